"""`python -m experiments bench write`: images/s writing 128 px images to a hashtag .beton.

The images are random textures (a smooth colour field, a few ellipses and sensor-like noise:
JPEG sees a natural image's entropy, not a flat colour) held in memory, so the figure measures
the writer (JPEG encoding in FFCV's worker processes, page allocation, metadata) and not the
source's decoding. The write runs in a fresh process, as in ``prepare``; the time is the
writer's own, without that process's start-up. On a shared machine the wall-clock figure
depends on the neighbours, so the CPU time is reported too, and the rate that ``workers`` free
cores would give. Target: >= 1,500 images/s on 2 cores.

``--processes P [P ...]`` measures instead prepare's parallel shard writing
(``datamodules.shards.write_shards``: each shard written in a process of its own, P at once,
each FFCV writer with cores / P workers): ``--images`` images in ``--shards`` shards, images/s
for each P, wall clock including the processes' start-up. Each shard's process makes its images
(256 textures, cycled) before its writer starts.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from datamodules.data_config import WRITE_MODES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", type=int, default=16000, help="images to write")
    parser.add_argument("--size", type=int, default=128, help="image side in px")
    parser.add_argument("--workers", type=int, default=2, help="FFCV writer processes (cores)")
    parser.add_argument("--write-mode", default="jpg", choices=WRITE_MODES)
    parser.add_argument("--jpeg-quality", type=int, default=90)
    parser.add_argument("--max-labels", type=int, default=8)
    parser.add_argument(
        "--processes",
        type=int,
        nargs="+",
        default=[],
        help="parallel shard writing with P processes (e.g. --processes 1 2)",
    )
    parser.add_argument("--shards", type=int, default=8, help="with --processes: shards written")


def textures(num: int, size: int, seed: int = 0) -> np.ndarray:
    """``num`` natural-ish RGB uint8 images [num, size, size, 3] (distinct 64-image motifs tiled
    with per-image noise, so generating thousands stays fast)."""
    rng = np.random.default_rng(seed)
    motifs = []
    yy, xx = np.mgrid[:size, :size]
    for _ in range(64):
        coarse = Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8))
        img = np.asarray(coarse.resize((size, size), Image.Resampling.BICUBIC)).astype(np.float32)
        for _ in range(3):
            cy, cx = rng.uniform(0, size, 2)
            ry, rx = rng.uniform(size / 12, size / 3, 2)
            img[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1] = rng.uniform(0, 255, 3)
        motifs.append(img)
    out = np.empty((num, size, size, 3), np.uint8)
    for i in range(num):
        noise = rng.normal(0, 8, (size, size, 3)).astype(np.float32)
        out[i] = np.clip(motifs[i % 64] + noise, 0, 255)
    return out


class _Items:
    """(rgb, label ids, sample id) rows over an in-memory image array."""

    def __init__(self, images: np.ndarray, labels: list[list[int]]):
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.images[i], self.labels[i], i


class ShardItems:
    """One shard's rows for ``shards.write_shards``: textures made in the writing process (in
    :meth:`open`), cycled, with global sample ids."""

    def __init__(self, first: int, count: int, size: int):
        self.first, self.count, self.size = first, count, size
        self.sample_ids = range(first, first + count)
        self._images: np.ndarray | None = None

    def open(self) -> ShardItems:
        self._images = textures(min(self.count, 256), self.size, seed=self.first)
        return self

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: int):
        k = self.first + i
        return self._images[i % len(self._images)], [k % 1000, (7 * k + 3) % 1000], k


def _parallel(args: argparse.Namespace, processes: int) -> dict:
    from datamodules.shards import write_shards
    from experiments.config import DataConfig, SourceConfig, WriteConfig

    cfg = DataConfig(
        source=SourceConfig(image_size=args.size),
        write=WriteConfig(
            max_labels=args.max_labels, jpeg_quality=args.jpeg_quality, mode=args.write_mode
        ),
    )
    per = -(-args.images // args.shards)
    jobs = [
        (f"train-{s:03d}.beton", ShardItems(s * per, min(per, args.images - s * per), args.size))
        for s in range(args.shards)
    ]
    with tempfile.TemporaryDirectory(prefix="bench-write-") as tmp:
        start = time.perf_counter()
        records, _ = write_shards(
            jobs, cfg, "bench", staging=Path(tmp), options={"workers": processes}
        )
        seconds = time.perf_counter() - start
    return {
        "processes": processes,
        "seconds": round(seconds, 3),
        "images_per_s": round(args.images / seconds, 1),
        "writer_s_per_shard": round(float(np.mean([r["write_s"] for r in records.values()])), 3),
    }


def run_parallel(args: argparse.Namespace) -> dict:
    runs = [_parallel(args, p) for p in args.processes]
    return {
        "images": args.images,
        "size": args.size,
        "shards": args.shards,
        "cpu_count": os.cpu_count(),
        "write_mode": args.write_mode,
        "runs": runs,
        "images_per_s": {str(r["processes"]): r["images_per_s"] for r in runs},
    }


def _write(path: str, num: int, size: int, workers: int, mode: str, quality: int, width: int):
    """Runs in the fresh process: build the images there (not pickled across), then write."""
    from datamodules.ffcv_store import write_hashtag_beton

    rng = np.random.default_rng(1)
    images = textures(num, size)
    labels = [
        sorted(rng.choice(1000, rng.integers(1, 4), replace=False).tolist()) for _ in range(num)
    ]
    cpu0 = _cpu_seconds()
    start = time.perf_counter()
    stats = write_hashtag_beton(
        path,
        _Items(images, labels),
        max_labels=width,
        max_resolution=size,
        jpeg_quality=quality,
        write_mode=mode,
        num_workers=workers,
    )
    stats["wall_s"] = time.perf_counter() - start
    stats["cpu_s"] = _cpu_seconds() - cpu0
    return stats


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its reaped children (FFCV's writer workers):
    the figure that does not depend on how busy a shared machine is."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def run(args: argparse.Namespace) -> dict:
    if args.processes:
        return run_parallel(args)
    from datamodules.ffcv_store import run_in_fresh_process

    with tempfile.TemporaryDirectory(prefix="bench-write-") as tmp:
        path = str(Path(tmp) / "bench.beton")
        stats = run_in_fresh_process(
            _write,
            path,
            args.images,
            args.size,
            args.workers,
            args.write_mode,
            args.jpeg_quality,
            args.max_labels,
        )
    seconds = float(stats["wall_s"])
    return {
        "images": args.images,
        "size": args.size,
        "workers": args.workers,
        "cpu_count": os.cpu_count(),
        "write_mode": args.write_mode,
        "jpeg_quality": args.jpeg_quality,
        "seconds": round(seconds, 3),
        "images_per_s": round(args.images / seconds, 1),
        "bytes_per_image": round(stats["bytes"] / args.images, 1),
        "cpu_s": round(float(stats["cpu_s"]), 3),
        # what `workers` cores give when nothing else runs on them
        "images_per_s_if_cores_free": round(args.images * args.workers / float(stats["cpu_s"]), 1),
        "target_images_per_s": 1500,
    }
