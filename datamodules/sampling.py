"""Hashtag resampling weights: how much each training image should be drawn so that the
hashtags among the draws follow a target distribution. The epoch orders drawn from these
weights are :mod:`datamodules.epoch_order`; label noise is :mod:`datamodules.label_noise`.

Resampling (``data.loading.sampling``). Let f(h) be hashtag h's frequency (training images
carrying it). The target share of hashtag h among the draws is t(h) ~ f(h) (``natural``),
sqrt(f(h)) (``sqrt``) or 1 (``uniform``), normalised over hashtags with f > 0. Hashtag h gets
the weight w(h) = t(h) / f(h): summing w(h) over the f(h) images of h gives exactly t(h).

An image with several hashtags needs one weight (``data.loading.sampling_combine``). All three
are exact for single-label images. With several labels per image no per-image weight can hit
every target, because an image's co-labels come along with it; what each gives:

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

With label noise the weights come from the noisy labels (see :mod:`datamodules.label_noise`).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from datamodules.data_config import COMBINE_MODES, SAMPLING_MODES
from datamodules.errors import UserInputError

_EXPONENT = {"natural": 1.0, "sqrt": 0.5, "uniform": 0.0}


def _check(value: str, valid: tuple[str, ...], key: str) -> str:
    if value not in valid:
        raise UserInputError(f"{key}={value!r} is not supported; use one of {', '.join(valid)}")
    return value


# --------------------------------------------------------------------------------------------
# resampling weights
# --------------------------------------------------------------------------------------------
def target_shares(counts: np.ndarray, mode: str) -> np.ndarray:
    """t(h): the share of draws hashtag h should get, float64 [V], summing to 1 over f > 0."""
    _check(mode, SAMPLING_MODES, "data.loading.sampling")
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
    given chunk by chunk in image order (see ``ffcv_read.iter_label_chunks``). Chunks are
    processed on a few threads, a bounded number at a time, and written into one preallocated
    array of ``num_images`` (N) weights: 4 bytes per image at peak.

    Returns None for ``natural`` (epochs are permutations; see the module doc).
    """
    _check(mode, SAMPLING_MODES, "data.loading.sampling")
    _check(combine, COMBINE_MODES, "data.loading.sampling_combine")
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
