"""`python -m experiments bench sampling`: resampling weights plus one epoch's index at scale.

The work ``HashtagDataModule`` does before a resampled epoch (``datamodules.sampling``,
``datamodules.epoch_order``), timed stage by stage on ``--images`` synthetic images whose
hashtags follow Zipf(``--zipf``) over ``--vocab`` hashtags, 1..``--max-labels`` per image
(padded int32 rows, as a .beton holds them):

1. ``counts_s``: hashtag frequencies from the label rows (``label_counts``);
2. ``weights_s``: per-image float32 weights (``image_weights``, ``--mode``/``--combine``);
3. ``draw_s``: ``--draws`` (default: one per image) int32 indices with replacement
   (``EpochSampler.indices``).

The label rows come from a pool of ``--pool`` rows repeated (generating 1e8 distinct Zipf rows
would take longer than the work measured; the weight gather does not depend on which ids
repeat). ``bytes_per_image`` is what a run holds: weights plus one epoch's indices;
``draw_temporary_bytes_per_image`` is the peak of what a draw allocates besides its output
(measured with tracemalloc on a second, untimed draw).
"""

from __future__ import annotations

import argparse
import os
import time
import tracemalloc

import numpy as np

from datamodules.data_config import COMBINE_MODES, SAMPLING_MODES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", type=int, default=100_000_000)
    parser.add_argument("--draws", type=int, default=None, help="default: --images")
    parser.add_argument("--vocab", type=int, default=17_000)
    parser.add_argument("--max-labels", type=int, default=4)
    parser.add_argument("--zipf", type=float, default=1.0, help="hashtag frequency exponent")
    parser.add_argument("--mode", default="sqrt", choices=SAMPLING_MODES)
    parser.add_argument("--combine", default="mean", choices=COMBINE_MODES)
    parser.add_argument("--pool", type=int, default=1 << 22, help="distinct label rows")
    parser.add_argument("--chunk", type=int, default=1 << 20, help="label rows per chunk")


def _label_pool(rows: int, vocab: int, width: int, exponent: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    cdf = np.cumsum(1.0 / np.arange(1, vocab + 1) ** exponent)
    ids = np.searchsorted(cdf, rng.random((rows, width)) * cdf[-1]).astype(np.int32)
    present = rng.integers(1, width + 1, rows)
    ids[np.arange(width)[None, :] >= present[:, None]] = -1
    return ids


def _chunks(pool: np.ndarray, images: int, chunk: int):
    start = 0
    while start < images:
        lo = start % len(pool)
        n = min(chunk, images - start, len(pool) - lo)
        yield pool[lo : lo + n]
        start += n


def run(args: argparse.Namespace) -> dict:
    from datamodules.epoch_order import EpochSampler
    from datamodules.sampling import image_weights, label_counts, worker_threads

    pool = _label_pool(min(args.pool, args.images), args.vocab, args.max_labels, args.zipf)

    def chunks():
        return _chunks(pool, args.images, args.chunk)

    start = time.perf_counter()
    counts = label_counts(chunks(), args.vocab)
    counted = time.perf_counter()
    weights = image_weights(chunks(), counts, args.mode, args.combine, args.images)
    weighted = time.perf_counter()
    sampler = EpochSampler(weights, args.images, seed=0, num_draws=args.draws)
    order = sampler.indices(0)
    drawn = time.perf_counter()
    # temporaries of one more epoch's draw beyond the new index itself (numpy reports its
    # allocations to tracemalloc); untimed
    tracemalloc.start()
    sampler.indices(1)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "images": args.images,
        "draws": len(order),
        "vocab": args.vocab,
        "max_labels": args.max_labels,
        "mode": args.mode,
        "combine": args.combine,
        "threads": worker_threads(),
        "cpu_count": os.cpu_count(),
        "counts_s": round(counted - start, 2),
        "weights_s": round(weighted - counted, 2),
        "draw_s": round(drawn - weighted, 2),
        "weights_plus_index_s": round(drawn - counted, 2),
        "total_s": round(drawn - start, 2),
        "bytes_per_image": round(sampler.nbytes / args.images, 2),
        "draw_temporary_bytes_per_image": round((peak - 4 * len(order)) / args.images, 3),
    }
