"""`python -m experiments bench <name>`: benchmarks that print figures and save them as JSON.

Each benchmark is a module ``experiments.benchmarks.<name>`` with ``add_arguments(parser)`` and
``run(args) -> dict``; the dict is printed and written to ``--out`` (default
``runs/bench/<name>.json``). Figures, never asserts: tests do not time anything.
"""

from __future__ import annotations

import argparse
import importlib
import json
from pathlib import Path

from experiments.cli import options_config
from experiments.rundir import atomic_write_json

BENCHMARKS = {
    "vocab": "labelling 10M tag records with a vocabulary (records/s)",
    "sources": "synthetic world rendering and tag sampling (images/s)",
    "write": "writing .beton shards (images/s); --processes P: parallel shard writing",
    "loader": "HashtagDataModule's FFCV loader vs a PIL DataLoader vs the decode limit; "
    "--shards N: one .beton vs N shards",
    "corpus": "prepare a synthetic corpus in many shards, read one epoch (both times)",
    "sampling": "resampling weights plus a 1e8-draw epoch index (seconds, bytes/image)",
    "loss": "multi-label softmax vs cross-entropy vs the dense formulation (time, memory)",
    "probe": "the linear probe's L-BFGS: its vector ops on one thread vs all (seconds per L2 path)",
    "train": "training throughput (images/s; MFU on a GPU)",
    "gpu": "the GPU path: FFCV loader into GPU memory, rx101 bf16 +/- compile, MFU, memory",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(
        dest="bench", required=True, metavar="{" + ",".join(BENCHMARKS) + "}"
    )
    for name, help_ in BENCHMARKS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        p.add_argument("--out", default=f"runs/bench/{name}.json", help="where to save the figures")
        _module(name).add_arguments(p)


def _module(name: str):
    """``experiments.benchmarks.<name>``, imported when its benchmark is named."""
    return importlib.import_module(f"experiments.benchmarks.{name}")


# --print-config prints the parsed options: `bench train --pipeline CONFIG k=v` has a config and
# overrides, yet its config is its options
resolved_configs = options_config


def run(args: argparse.Namespace) -> int:
    result = _module(args.bench).run(args)
    atomic_write_json(Path(args.out), result)
    print(json.dumps(result, indent=2, default=str))
    print(f"saved to {args.out}")
    return 0
