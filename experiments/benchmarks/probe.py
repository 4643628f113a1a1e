"""`python -m experiments bench probe`: the linear probe's L-BFGS, threads for its vector work.

Times one warm-started L2 path (the grid strong to weak, as inner CV fits it) of
``fit_softmax_regression`` on Gaussian features with a class signal, at the quickstart's probe
sizes, with L-BFGS's vector ops (dot products, axpys) on one thread against on all of torch's
threads; the two GEMMs use all threads in both. Medians over repeats, the variants interleaved
so machine noise hits both alike. ``OMP_WAIT_POLICY`` is fixed when OpenMP starts: every
``python -m experiments`` process runs with PASSIVE (for FFCV's threads) unless it is set.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from tqdm import tqdm

GRID = (10.0, 1.0, 0.1, 0.01, 1e-3, 1e-4)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", type=int, nargs="+", default=[755, 5000])
    parser.add_argument("--dim", type=int, default=1920, help="feature width (rx-tiny `all`)")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="default: torch's own")


def _data(n: int, dim: int, classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    y = torch.randint(0, classes, (n,), generator=gen)
    x = torch.randn(n, dim, generator=gen)
    x[:, :64] += 0.3 * y[:, None].float()
    return x, y


def _path_s(x, y, classes: int, vector_threads: int | None) -> float:
    from lightning_modules.softmax_regression import PATH_MAX_ITER, fit_softmax_regression

    start, model = time.perf_counter(), None
    for l2 in GRID:
        model = fit_softmax_regression(
            x, y, classes, l2, init=model, max_iter=PATH_MAX_ITER, vector_threads=vector_threads
        )
    return time.perf_counter() - start


def run(args: argparse.Namespace) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    variants = {"vector_ops_1_thread": 1, f"vector_ops_{threads}_threads": None}
    sizes = {}
    for n in args.images:
        x, y = _data(n, args.dim, args.classes)
        times: dict[str, list[float]] = {name: [] for name in variants}
        for _ in tqdm(range(args.repeats), desc=f"bench probe n={n}", leave=False):
            for name, vector_threads in variants.items():
                times[name].append(_path_s(x, y, args.classes, vector_threads))
        med = {name: round(statistics.median(t), 3) for name, t in times.items()}
        one, many = med["vector_ops_1_thread"], med[f"vector_ops_{threads}_threads"]
        sizes[str(n)] = {"path_s": med, "speedup_1_thread": round(many / one, 2)}
    return {
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(unset)"),
        "torch_threads": threads,
        "dim": args.dim,
        "classes": args.classes,
        "grid": list(GRID),
        "images": sizes,
    }
