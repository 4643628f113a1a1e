"""Record-source throughput: synthetic rendering (images/s, one core) and OpenClipart
rasterization (SVGs/s on N workers, on a sample of the SVGs in a temporary cache).

``python -m experiments bench sources [--images 5000] [--size 64] [--svgs 400] [--workers 2]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from datamodules.sources import openclipart
from datamodules.sources.synthetic import get_world


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", type=int, default=5000, help="synthetic images to render")
    parser.add_argument("--size", type=int, default=64, help="image size (px)")
    parser.add_argument("--concepts", type=int, default=300, help="synthetic concepts")
    parser.add_argument(
        "--svgs", type=int, default=400, help="OpenClipart SVGs to rasterize (0 = skip)"
    )
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))


def _synthetic(n: int, size: int, concepts: int) -> dict:
    world = get_world(concepts, 1.0, size)
    world.record(0, 0)  # warm-up
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(n):
        world.record(0, i)
    render_s, render_cpu = time.perf_counter() - start, time.process_time() - cpu
    start = time.perf_counter()
    for i in range(n):
        world.tags(0, i)
    tags_s = time.perf_counter() - start
    return {
        "images": n,
        "size": size,
        "images_per_s_one_core": round(n / render_s, 1),
        # per CPU-second of this process: the figure on a machine shared with other jobs
        "images_per_cpu_s": round(n / render_cpu, 1),
        "tag_records_per_s_one_core": round(n / tags_s, 1),
    }


def _openclipart(n: int, size: int, workers: int) -> dict:
    src = openclipart.svg_root()
    every = sorted(src.rglob("*.svg"))
    step = max(1, len(every) // n)
    sample = every[::step][:n]  # spread over all folders
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "svg"
        for p in sample:
            dest = root / p.relative_to(src)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(p, dest)
        start = time.perf_counter()
        index = openclipart.build_cache(Path(tmp) / "cache", size, root=root, workers=workers)
        wall = time.perf_counter() - start
    return {
        "svgs": len(sample),
        "size": size,
        "workers": workers,
        "wall_s": round(wall, 2),
        "svgs_per_s": round(len(sample) / wall, 1),
        "failed": len(index["failed"]),
        "projected_full_corpus_s": round(len(every) / (len(sample) / wall), 1),
    }


def run(args: argparse.Namespace) -> dict:
    out = {"synthetic": _synthetic(args.images, args.size, args.concepts)}
    if args.svgs > 0:
        out["openclipart"] = _openclipart(args.svgs, args.size, args.workers)
    return out
