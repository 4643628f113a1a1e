"""Hashtag resampling and label noise: what each training epoch draws, a pure function of
(seed, epoch), and how the corpus's labels are corrupted, a pure function of (seed, sample_id,
slot).

Resampling (``data.sampling``). Let f(h) be hashtag h's frequency (training images carrying it).
The target share of hashtag h among the draws is t(h) ~ f(h) (``natural``), sqrt(f(h))
(``sqrt``) or 1 (``uniform``), normalised over hashtags with f > 0. Hashtag h gets the weight
w(h) = t(h) / f(h): summing w(h) over the f(h) images of h gives exactly t(h).

An image with several hashtags needs one weight (``data.sampling_combine``). All three are
exact for single-label images. With several labels per image no per-image weight can hit every
target, because an image's co-labels come along with it; what each gives:

- ``mean``: the average of its hashtags' w. Images are not favoured for having more labels; a
  rare hashtag's weight is diluted by its frequent co-labels, so there is no lower bound on a
  hashtag's rate.
- ``max``: the largest of its hashtags' w (the rate of its rarest hashtag). Since the image
  weights sum to at most 1, the share of draws carrying h is >= t(h) for every h; the frequent
  hashtags that ride along on rare ones exceed their target.
- ``sum``: the sum of its hashtags' w: "draw a hashtag with probability t(h), then one of its
  images uniformly". The hashtag an image was drawn *for* follows t exactly and the share of
  draws carrying h is >= t(h); images with many labels are drawn more often.

Known bias, measured (tests/test_sampling.py corpus: 50 Zipf(1) hashtags, 1-3 per image,
``uniform`` target): among label occurrences the 5 most frequent hashtags get 3.1x (mean),
3.5x (max) and 3.4x (sum) their target share; total-variation distance to the target is 0.23,
0.27 and 0.26, against 0.43 for natural sampling. With ``sqrt``: 1.5-1.6x, TV 0.14-0.15 (0.25).

``natural`` needs no weights: each epoch is a permutation of every training image (each image
exactly once), which is the natural distribution with no sampling noise. Images without labels
get weight 0 under ``sqrt`` and ``uniform`` (they carry no hashtag to balance).

An epoch is ``num_draws`` indices (by default the number of training images) drawn with
replacement from the per-image weights, seeded by (seed, epoch). Memory: float32 weights and
int32 indices, 8 bytes per image; drawing is blockwise and chunkwise (see ``draw_indices``),
on a few threads, so temporaries are O(block + chunk) plus a small count table. Measured on 2
cores (``python -m experiments bench sampling``): weights and a 1e8-draw epoch of 1e8
Zipf-labelled images in 3.4-4.5 s.

Label noise (``data.label_noise`` p, ``data.label_noise_dist``). The paper corrupts the
dataset, so the noise is fixed for the whole run: label slot j of image i is replaced with
probability p, decided by a counter-based hash of (seed, sample_id, slot) with no epoch in it,
so every epoch, rank, worker and batch sees the same corrupted corpus and one .beton serves
every noise level. The replacement is drawn from the marginal (``natural``: the clean training
frequencies f(h); ``uniform``: every id of the vocabulary) restricted to the ids the image does
not already carry: its clean labels and the replacements of its earlier slots are excluded, so a
replaced label always changes (the realized rate is p) and a row never holds a hashtag twice.
The draw is exact (an integer CDF with the excluded intervals cut out; see
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

import os
from collections import deque
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from datamodules.data_config import COMBINE_MODES, NOISE_DISTS, SAMPLING_MODES
from datamodules.errors import UserInputError

_EXPONENT = {"natural": 1.0, "sqrt": 0.5, "uniform": 0.0}
DRAW_BLOCK = 1 << 16  # images per block of the blockwise draw
DRAW_CHUNK = 1 << 18  # output positions per chunk (shuffled in cache)
MAX_CHUNKS = 1024  # chunks grow beyond DRAW_CHUNK past 2.7e8 draws (bounds the count table)
_NOISE_DECIDE, _NOISE_PICK = 0, 1  # hash streams: replace or not; which hashtag


def _check(value: str, valid: tuple[str, ...], key: str) -> str:
    if value not in valid:
        raise UserInputError(f"{key}={value!r} is not supported; use one of {', '.join(valid)}")
    return value


# --------------------------------------------------------------------------------------------
# resampling weights
# --------------------------------------------------------------------------------------------
def target_shares(counts: np.ndarray, mode: str) -> np.ndarray:
    """t(h): the share of draws hashtag h should get, float64 [V], summing to 1 over f > 0."""
    _check(mode, SAMPLING_MODES, "data.sampling")
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 1 or (counts < 0).any():
        raise ValueError("hashtag counts must be a 1-D array of non-negative frequencies")
    present = counts > 0
    if not present.any():
        raise UserInputError("no hashtag occurs in the training set; nothing to resample")
    shares = np.zeros_like(counts)
    shares[present] = counts[present] ** _EXPONENT[mode]
    return shares / shares.sum()


def hashtag_weights(counts: np.ndarray, mode: str) -> np.ndarray:
    """w(h) = t(h) / f(h), float64 [V] (0 for hashtags absent from the training set), scaled so
    the largest is 1 (the scale does not matter; it keeps float32 image weights in range)."""
    counts = np.asarray(counts, dtype=np.float64)
    shares = target_shares(counts, mode)
    weights = np.divide(shares, counts, out=np.zeros_like(shares), where=counts > 0)
    return weights / weights.max()


def image_weights(
    label_chunks: Iterable[np.ndarray],
    counts: np.ndarray,
    mode: str,
    combine: str,
    num_images: int,
) -> np.ndarray | None:
    """Per-image draw weights, float32 [N], from padded label rows (int32 [n, W], -1 = none),
    given chunk by chunk in image order (see ``ffcv_store.iter_label_chunks``). Chunks are
    processed on a few threads, a bounded number at a time, and written into one preallocated
    array of ``num_images`` (N) weights: 4 bytes per image at peak.

    Returns None for ``natural`` (epochs are permutations; see the module doc).
    """
    _check(mode, SAMPLING_MODES, "data.sampling")
    _check(combine, COMBINE_MODES, "data.sampling_combine")
    if mode == "natural":
        return None
    # one gather per label column: id -1 (padding) picks the appended 0
    table = np.append(hashtag_weights(counts, mode), 0.0).astype(np.float32)

    def combined(labels: np.ndarray) -> np.ndarray:
        labels = np.asarray(labels)
        if labels.size and (labels.max() >= len(table) - 1 or labels.min() < -1):
            raise ValueError(
                f"label ids span {int(labels.min())}..{int(labels.max())}, outside -1 (padding)"
                f"..{len(table) - 2}: the counts do not belong to this .beton"
            )
        if labels.shape[1] == 0:
            return np.zeros(len(labels), np.float32)
        out = table[labels[:, 0]]
        present = (labels[:, 0] >= 0).astype(np.float32) if combine == "mean" else None
        for j in range(1, labels.shape[1]):
            if combine == "max":
                np.maximum(out, table[labels[:, j]], out=out)
            else:
                out += table[labels[:, j]]
            if present is not None:
                present += labels[:, j] >= 0
        if present is not None:
            out /= np.maximum(present, 1.0)
        return out

    weights, filled = np.empty(int(num_images), np.float32), 0
    for part in _map_ordered(combined, label_chunks):
        if filled + len(part) > len(weights):
            raise ValueError(f"more label rows than num_images={num_images}")
        weights[filled : filled + len(part)] = part
        filled += len(part)
    if filled != len(weights):
        raise ValueError(f"{filled} label rows for num_images={num_images}")
    if not (weights > 0).any():
        raise UserInputError("every training image has weight 0 (no labels); check the .beton")
    return weights


def label_counts(label_chunks: Iterable[np.ndarray], vocab_size: int) -> np.ndarray:
    """Hashtag frequencies (images carrying each id) from padded label rows, int64 [V]."""
    v = int(vocab_size)

    def count(labels: np.ndarray) -> np.ndarray:
        ids = np.asarray(labels).reshape(-1).astype(np.int64) + 1  # padding -1 -> bin 0
        return np.bincount(ids, minlength=v + 1)[1 : v + 1]

    counts = np.zeros(v, dtype=np.int64)
    for part in _map_ordered(count, label_chunks):
        counts += part
    return counts


def _map_ordered(fn, items: Iterable, threads: int | None = None):
    """``map(fn, items)`` on a few threads (numpy releases the GIL), results in order, with at
    most 2 x threads items read ahead (an iterator over a huge file stays O(chunk) in memory)."""
    threads = threads or worker_threads()
    if threads == 1:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(threads) as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= 2 * threads:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def worker_threads() -> int:
    """Threads for the CPU-side sampling work: the cores this process may use, at most 8."""
    return max(1, min(8, len(os.sched_getaffinity(0))))


# --------------------------------------------------------------------------------------------
# epoch orders
# --------------------------------------------------------------------------------------------
def epoch_rng(seed: int, epoch: int, stream: int = 0) -> np.random.Generator:
    """The generator for one epoch's draw: a pure function of (seed, epoch, stream)."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(epoch), int(stream), 0x5A3])


def draw_indices(
    weights: np.ndarray,
    num_draws: int,
    rng: np.random.Generator,
    block: int = DRAW_BLOCK,
    chunk: int = DRAW_CHUNK,
    threads: int | None = None,
) -> np.ndarray:
    """``num_draws`` indices drawn i.i.d. with probability weights[i] / sum(weights), int32.

    Exact, and cache-friendly at 1e8 draws (no pass of random access over the whole output):

    1. The output is cut into chunks of ``chunk`` positions; each chunk's draws are split over
       blocks of ``block`` images by a multinomial on the block totals (a [chunks, blocks]
       count table, O(num_draws / chunk * n / block) memory).
    2. Per block: all its draws at once by inverse CDF of sorted uniforms (exponential
       spacings make the search a cache-friendly sweep), shuffled within the block (which
       makes the split among chunks uniformly random) and scattered to the chunks' slots.
    3. Per chunk: one in-cache shuffle, so every position is an i.i.d. draw.

    Blocks and chunks each get a generator spawned from ``rng``, so the result is the same for
    any ``threads`` (default: :func:`worker_threads`)."""
    weights = np.asarray(weights)
    n, num_draws = len(weights), int(num_draws)
    if n >= np.iinfo(np.int32).max:
        raise ValueError(f"{n} images do not fit int32 indices")
    starts = np.arange(0, n, block)
    totals = _block_sums(weights, block)
    if not n or totals.sum() <= 0:
        raise ValueError("cannot draw from weights that are all zero")
    chunk = max(int(chunk), -(-num_draws // MAX_CHUNKS), 1)
    sizes = np.full(max(1, -(-num_draws // chunk)), chunk, dtype=np.int64)
    sizes[-1] = num_draws - chunk * (len(sizes) - 1)
    p = totals / totals.sum()
    counts = np.stack([rng.multinomial(int(s), p) for s in sizes])  # [chunks, blocks]
    # first output slot of (chunk c, block b): chunk c's start + draws of c in blocks < b
    slot = np.cumsum(counts, axis=1) - counts
    slot += (np.cumsum(sizes) - sizes)[:, None]
    children = rng.spawn(len(starts) + len(sizes))
    out = np.empty(num_draws, dtype=np.int32)

    def fill_block(b: int) -> None:
        lo, gen = int(starts[b]), children[b]
        cdf = np.cumsum(weights[lo : lo + block], dtype=np.float64)
        per_chunk = counts[:, b]
        hit = np.flatnonzero(per_chunk)
        k_c = per_chunk[hit]
        k = int(k_c.sum())
        spacings = np.cumsum(gen.standard_exponential(k + 1))
        picks = np.searchsorted(cdf, spacings[:-1] * (cdf[-1] / spacings[-1]), side="right")
        # u * total can round up to total: fall back to the last image with weight
        overflow = picks >= len(cdf)
        if overflow.any():
            picks[overflow] = int(np.flatnonzero(np.diff(cdf, prepend=0.0) > 0)[-1])
        picks = picks.astype(np.int32)
        picks += lo
        gen.shuffle(picks)
        dest = np.repeat(slot[hit, b] - (np.cumsum(k_c) - k_c), k_c)
        dest += np.arange(k)
        out[dest] = picks

    def shuffle_chunk(c: int) -> None:
        lo = int(c * chunk)
        children[len(starts) + c].shuffle(out[lo : lo + int(sizes[c])])

    threads = threads or worker_threads()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(fill_block, np.flatnonzero(counts.sum(axis=0))))
        list(pool.map(shuffle_chunk, range(len(sizes))))
    return out


def _block_sums(weights: np.ndarray, block: int) -> np.ndarray:
    """float64 sums of consecutive ``block``-long runs of ``weights`` (the last may be shorter),
    without a float64 copy of the whole array (``np.add.reduceat`` with a dtype makes one)."""
    full = len(weights) // block * block
    sums = np.empty(-(-len(weights) // block), dtype=np.float64)
    weights[:full].reshape(-1, block).sum(axis=1, dtype=np.float64, out=sums[: full // block])
    if full < len(weights):
        sums[-1] = weights[full:].sum(dtype=np.float64)
    return sums


class EpochSampler:
    """Which training images each epoch reads, in order: a permutation (``natural``) or
    ``num_draws`` weighted draws with replacement, a pure function of (seed, epoch).

    The last epoch's order is cached: FFCV asks for the same epoch more than once.
    """

    def __init__(
        self, weights: np.ndarray | None, num_train: int, seed: int, num_draws: int | None = None
    ):
        if weights is not None and len(weights) != num_train:
            raise ValueError(f"{len(weights)} weights for {num_train} training images")
        self.weights = None if weights is None else np.asarray(weights, dtype=np.float32)
        self.num_train = int(num_train)
        self.num_draws = int(num_train if num_draws is None else num_draws)
        self.seed = int(seed)
        self._cached: tuple[int, np.ndarray] | None = None

    def indices(self, epoch: int) -> np.ndarray:
        """int32 [num_draws] image indices for ``epoch``."""
        if self._cached is not None and self._cached[0] == epoch:
            return self._cached[1]
        rng = epoch_rng(self.seed, epoch)
        if self.weights is None:
            order = np.arange(self.num_train, dtype=np.int32)
            rng.shuffle(order)
            if self.num_draws != self.num_train:  # more or fewer than one pass
                reps = -(-self.num_draws // self.num_train)
                order = np.concatenate([order] * reps)[: self.num_draws]
        else:
            order = draw_indices(self.weights, self.num_draws, rng)
        self._cached = (int(epoch), order)
        return order

    @property
    def nbytes(self) -> int:
        """Memory held per run: the weights plus one epoch's indices."""
        weights = 0 if self.weights is None else self.weights.nbytes
        return weights + (0 if self._cached is None else self._cached[1].nbytes)


def shard_for_rank(order: np.ndarray, rank: int, world_size: int) -> np.ndarray:
    """Rank ``rank``'s disjoint share of an epoch order: every world_size-th position starting at
    rank, truncated so every rank gets the same count (DDP ranks must run the same number of
    steps); at most world_size - 1 draws of the epoch are left out."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside a world of {world_size}")
    per_rank = len(order) // world_size
    return order[rank : rank + per_rank * world_size : world_size]


# --------------------------------------------------------------------------------------------
# label noise
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


def noise_weights(counts: np.ndarray, dist: str) -> np.ndarray:
    """The marginal the replacements are drawn from, as integer weights int64 [V]: the natural
    frequencies ``counts`` or 1 for every id of the vocabulary (``uniform``)."""
    _check(dist, NOISE_DISTS, "data.label_noise_dist")
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
        raise UserInputError(f"data.label_noise={p} must be a probability within 0..1")
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
    (:func:`_map_ordered`)."""

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
