"""How the corpus's labels are corrupted (label noise), a pure function of (seed, sample_id,
slot).

Label noise (``data.loading.label_noise`` p, ``data.loading.label_noise_dist``). The paper
corrupts the dataset, so the noise is fixed for the whole run: label slot j of image i is
replaced with probability p, decided by a counter-based hash of (seed, sample_id, slot) with no
epoch in it, so every epoch, rank, worker and batch sees the same corrupted corpus and one
.beton serves every noise level. The replacement is drawn from the marginal (``natural``: the
clean training frequencies f(h); ``uniform``: every id of the vocabulary) restricted to the ids
the image does not already carry: its clean labels and the replacements of its earlier slots are
excluded, so a replaced label always changes (the realized rate is p) and a row never holds a
hashtag twice. The draw is exact (an integer CDF with the excluded intervals cut out; see
:func:`_draw_excluding`) and vectorized over the batch, one pass per label slot. If an image's
labels already cover every id with weight, the label stays.

Resampling with noise uses the *noisy* labels: ``HashtagDataModule`` computes the hashtag
frequencies and per-image weights from the noisy rows (:func:`noisy_label_chunks`, possible
because the noise is a pure function of (seed, sample_id, slot)). A corrupted corpus is all a
resampler would ever see; weights from the clean labels would up-weight an image for a rare tag
it no longer carries, leaking the clean labels into which images are drawn. The replacement
marginal itself is the clean frequencies (the distribution the corruption samples from).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from datamodules.data_config import NOISE_DISTS
from datamodules.errors import UserInputError
from datamodules.sampling import _check, _map_ordered

_NOISE_DECIDE, _NOISE_PICK = 0, 1  # hash streams: replace or not; which hashtag


# --------------------------------------------------------------------------------------------
# counter-based hash
# --------------------------------------------------------------------------------------------
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: a bijective, well-mixed uint64 -> uint64 hash (wraps mod 2^64)."""
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


def hash_uniform(seed: int, sample_ids: np.ndarray, slots: np.ndarray, stream: int) -> np.ndarray:
    """Uniform [0, 1) float64 numbers, one per (sample_id, slot) broadcast pair, that depend only
    on (seed, sample_id, slot, stream): a counter-based generator (no epoch: label noise is
    fixed for the whole run)."""
    with np.errstate(over="ignore"):
        h = _mix(np.uint64(int(seed) & 0xFFFFFFFFFFFFFFFF) + _GOLDEN)
        h = _mix(h ^ np.asarray(sample_ids).astype(np.uint64))
        h = _mix(h ^ (np.asarray(slots).astype(np.uint64) * np.uint64(2) + np.uint64(stream)))
    return (h >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


# --------------------------------------------------------------------------------------------
# corruption
# --------------------------------------------------------------------------------------------
def noise_weights(counts: np.ndarray, dist: str) -> np.ndarray:
    """The marginal the replacements are drawn from, as integer weights int64 [V]: the natural
    frequencies ``counts`` or 1 for every id of the vocabulary (``uniform``)."""
    _check(dist, NOISE_DISTS, "data.loading.label_noise_dist")
    counts = np.asarray(counts)
    if counts.ndim != 1 or not len(counts) or (counts < 0).any():
        raise ValueError("hashtag counts must be a non-empty 1-D array of frequencies")
    if dist == "uniform":
        return np.ones(len(counts), dtype=np.int64)
    return counts.astype(np.int64)


def _draw_excluding(
    weights: np.ndarray, cdf: np.ndarray, excluded: np.ndarray, u: np.ndarray
) -> np.ndarray:
    """One id per row of ``excluded`` (int [n, k], -1 = none, repeats allowed), drawn with
    probability weights[h] / (total - excluded mass) over the ids not excluded, from the uniform
    numbers ``u`` [n]; -1 where every id with weight is excluded.

    Exact, in integers: ``t`` is a position in the CDF with the excluded intervals cut out; it
    is mapped back to the full CDF by stepping over each excluded interval [start, start + w)
    that lies at or below it, in ascending id order, then found by one binary search."""
    excluded = np.ascontiguousarray(np.sort(excluded, axis=1).T)  # [k, n]: rows are columns
    valid = excluded >= 0
    valid[1:] &= excluded[1:] != excluded[:-1]
    safe = np.maximum(excluded, 0)
    mass = weights[safe]
    mass[~valid] = 0
    start = cdf[safe]
    start -= weights[safe]
    remaining = int(cdf[-1]) - mass.sum(axis=0)
    t = np.minimum((u * remaining).astype(np.int64), np.maximum(remaining - 1, 0))
    for k in range(len(excluded)):
        t += mass[k] * (start[k] <= t)
    new = np.searchsorted(cdf, t, side="right")
    new[remaining <= 0] = -1
    return new


def apply_label_noise(
    labels: torch.Tensor | np.ndarray,
    sample_ids: torch.Tensor | np.ndarray,
    p: float,
    dist: str,
    counts: np.ndarray,
    seed: int,
) -> torch.Tensor | np.ndarray:
    """Replace each present label (id >= 0) of ``labels`` int [B, W] with probability ``p`` by a
    hashtag drawn from the marginal ``dist`` (natural frequency ``counts``, or uniform over the
    len(counts) ids), excluding every label the image has and the replacements made in its
    earlier slots. Returns a new array of the input's kind; padding (-1) is untouched; p = 0
    returns the input. A pure function of (seed, sample_id, slot): the same in every epoch."""
    weights = noise_weights(counts, dist)
    if not 0.0 <= p <= 1.0:
        raise UserInputError(f"data.loading.label_noise={p} must be a probability within 0..1")
    if p == 0.0:
        return labels
    as_torch = isinstance(labels, torch.Tensor)
    lab = labels.cpu().numpy() if as_torch else np.asarray(labels)
    ids = sample_ids.cpu().numpy() if isinstance(sample_ids, torch.Tensor) else sample_ids
    ids = np.asarray(ids).reshape(-1, 1)
    if len(ids) != len(lab):
        raise ValueError(f"{len(ids)} sample ids for {len(lab)} label rows")
    if lab.size and lab.max() >= len(weights):
        raise ValueError(f"label id {int(lab.max())} outside the {len(weights)}-id vocabulary")
    noisy = lab.copy()
    present = lab >= 0
    used = np.flatnonzero(present.any(axis=0))
    if not len(used):
        return labels if as_torch else noisy
    width = int(used[-1]) + 1  # slots beyond the last one any row uses are padding only
    slots = np.arange(width).reshape(1, -1)
    replace = (hash_uniform(seed, ids, slots, _NOISE_DECIDE) < p) & present[:, :width]
    cdf = np.cumsum(weights)
    for j in np.flatnonzero(replace.any(axis=0)):
        rows = np.flatnonzero(replace[:, j])
        excluded = np.concatenate([lab[rows, :width], noisy[rows, :j]], axis=1).astype(np.int64)
        u = hash_uniform(seed, ids[rows, 0], j, _NOISE_PICK)
        new = _draw_excluding(weights, cdf, excluded, u)
        keep = new >= 0  # nothing left to draw: the label stays
        noisy[rows[keep], j] = new[keep].astype(lab.dtype)
    if as_torch:
        return torch.from_numpy(noisy).to(labels.device)
    return noisy


def noisy_label_chunks(
    label_chunks: Iterable[np.ndarray],
    p: float,
    dist: str,
    counts: np.ndarray,
    seed: int,
    first_id: int = 0,
):
    """``label_chunks`` (padded rows in sample-id order, the first with id ``first_id``) with
    :func:`apply_label_noise` applied: the labels training will see, for the resampling
    weights. Lazy and in order, on a few threads with a bounded read-ahead
    (:func:`datamodules.sampling._map_ordered`)."""

    def numbered():
        next_id = int(first_id)
        for chunk in label_chunks:
            yield next_id, chunk
            next_id += len(chunk)

    def corrupt(item: tuple[int, np.ndarray]) -> np.ndarray:
        first, chunk = item
        ids = np.arange(first, first + len(chunk), dtype=np.int64)
        return apply_label_noise(chunk, ids, p, dist, counts, seed)

    yield from _map_ordered(corrupt, numbered())
