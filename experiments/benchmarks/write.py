"""`python -m experiments bench write`: images/s writing 128 px images to a hashtag .beton.

The images are random textures (a smooth colour field, a few ellipses and sensor-like noise:
JPEG sees a natural image's entropy, not a flat colour) held in memory, so the figure measures
the writer (JPEG encoding in FFCV's worker processes, page allocation, metadata) and not the
source's decoding. The write runs in a fresh process, as in ``prepare``; the time is the
writer's own, without that process's start-up. On a shared machine the wall-clock figure
depends on the neighbours, so the CPU time is reported too, and the rate that ``workers`` free
cores would give. Target: >= 1,500 images/s on 2 cores.
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", type=int, default=16000, help="images to write")
    parser.add_argument("--size", type=int, default=128, help="image side in px")
    parser.add_argument("--workers", type=int, default=2, help="FFCV writer processes (cores)")
    parser.add_argument("--write-mode", default="jpg", choices=("jpg", "raw", "smart"))
    parser.add_argument("--jpeg-quality", type=int, default=90)
    parser.add_argument("--max-labels", type=int, default=8)


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
