"""`python -m experiments prepare <config.yaml> [key=value ...]`: raw tagged images -> FFCV shards.

Takes a run config (only its ``data`` section and ``seed`` matter), runs or reuses the cached
stages of :func:`datamodules.prepare.ensure_prepared`, then prints the summary (images in, kept,
deduplicated, corrupt, unlabeled, time per stage) and the prepared folder on the last line.

``--launcher`` takes the names of ``datamodules.launch.LAUNCHERS``, which mean the same for
``sweep``: ``local`` (the default) is a process pool on this machine with one shard per core;
past one machine, ``--num-shards N --launcher slurm`` runs the scan (decode, hash, count tags)
and the .beton writes as submitit job arrays; ``--launcher submitit-local`` runs the same path
with submitit's LocalExecutor. (Until issue 16 the pool was ``process`` and ``local`` meant the
LocalExecutor; ``process`` now fails with an error naming ``local``.)
"""

from __future__ import annotations

import argparse

from datamodules.launch import LAUNCHERS, launcher_arg
from datamodules.prepare import ensure_prepared, format_summary
from experiments.cli import add_config_arguments, config_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument(
        "--num-shards",
        type=int,
        default=None,
        help="split the source scan into N shards (default: one per CPU core, at most 8)",
    )
    parser.add_argument(
        "--launcher",
        type=launcher_arg,
        choices=LAUNCHERS,
        default="local",
        help="local: a process pool on this machine; submitit-local: submitit's LocalExecutor; "
        "slurm: a submitit job array",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=0,
        help="processes at once on this machine for the scan and the .beton writes "
        "(default: one per CPU core)",
    )
    parser.add_argument("--partition", default="", help="SLURM partition (--launcher slurm)")
    parser.add_argument("--timeout-min", type=int, default=240, help="per-shard job time limit")
    parser.add_argument("--cpus-per-task", type=int, default=4, help="CPUs per SLURM shard job")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    options = {
        "partition": args.partition,
        "timeout_min": args.timeout_min,
        "cpus_per_task": args.cpus_per_task,
        "workers": args.processes,
    }
    out = ensure_prepared(
        cfg.data,
        cfg.seed,
        progress=not args.quiet,
        num_shards=args.num_shards,
        launcher=args.launcher,
        launcher_options=options,
        summary=False,
    )
    print(format_summary(out))
    print(out)
    return 0
