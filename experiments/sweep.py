"""`python -m experiments sweep <sweep.yaml> [key=value ...]`: expand a sweep and launch it.

    --dry-run                 print every run (name, images seen) and its transfer runs
    --launcher local          each job (pretraining + its transfers) in one fresh process (default)
    --jobs N                  local: N jobs at once, cores / N torch threads each (default 1)
    --launcher submitit-local the submitit path, with its LocalExecutor (what tests use)
    --launcher slurm          SLURM job array through submitit (settings: the spec's `slurm:`)
    --launcher wandb-export   write a `wandb sweep` YAML whose agent calls `--from-wandb`
    --from-wandb              run the one point named by a W&B agent's key=value parameters

The first three are ``datamodules.launch.LAUNCHERS`` and mean the same for `prepare` (where
`local` is a process pool on this machine); `wandb-export` is the sweep's own.

Extra key=value arguments are run-config overrides added to every run (e.g. the paper specs
need `data.source.manifest=/path/to/manifest.jsonl`). Rerunning a sweep skips complete runs, resumes
runs that have a checkpoint and reruns failed ones; it ends with done / resumed / failed counts.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import yaml

from datamodules.errors import UserInputError
from datamodules.launch import LAUNCHERS as SHARED_LAUNCHERS
from datamodules.launch import launcher_arg
from experiments import launchers, wandb_sweep
from experiments.rundir import atomic_write_json, atomic_write_text
from experiments.sweep_spec import PlannedRun, SweepSpec, expand, load_spec

LAUNCHERS = (*SHARED_LAUNCHERS, "wandb-export")  # the names prepare takes, and the export
SWEEPS_SUBDIR = "_sweeps"  # under runs_dir: one JSON per launched sweep (read by results.py)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", help="sweep spec, e.g. configs/sweeps/scale_mini.yaml")
    parser.add_argument("overrides", nargs="*", help="run-config overrides for every run (k=v)")
    parser.add_argument("--dry-run", action="store_true", help="print the runs, launch nothing")
    parser.add_argument("--launcher", type=launcher_arg, choices=LAUNCHERS, default="local")
    parser.add_argument("--runs-dir", default="", help="override the spec's / base's runs_dir")
    launchers.add_jobs_argument(parser)
    parser.add_argument(
        "--only", nargs="+", default=None, metavar="NAME", help="launch only these run names"
    )
    parser.add_argument(
        "--no-wait", action="store_true", help="submitit: return after submitting (slurm default)"
    )
    parser.add_argument(
        "--out",
        default="",
        help="wandb-export: YAML path (default <runs_dir>/_sweeps/<name>.wandb.yaml)",
    )
    parser.add_argument(
        "--transfer-set",
        nargs="+",
        default=[],
        metavar="K=V",
        help="overrides for every transfer run (e.g. transfer.target_root=/data/imagenet)",
    )
    parser.add_argument(
        "--from-wandb",
        action="store_true",
        help="agent entry: key=value args (or wandb.config) select one point of the sweep",
    )


# ---------------------------------------------------------------------------------------------
# dry run


def planned_train_images(cfg: Any) -> int | None:
    """The training-set size of a planned run where it is known before preparation: an
    absolute data.write.scale, or a fraction of a synthetic corpus (less the val share)."""
    if cfg.data.write.scale > 1:
        num = int(cfg.data.write.scale)
    elif cfg.data.source.name == "synthetic":
        num = int(cfg.data.source.num_images * cfg.data.write.scale)
    else:
        return None
    return max(1, int(num * (1 - cfg.data.write.val_fraction)))


def planned_images_seen(cfg: Any) -> int | None:
    """The images a planned run will see: schedule.images_seen, or the paper's heuristic
    (lightning_modules.optim) on :func:`planned_train_images` (None: known after prepare)."""
    if cfg.schedule.images_seen > 0:
        return int(cfg.schedule.images_seen)
    num = planned_train_images(cfg)
    if num is None:
        return None
    from lightning_modules.optim import heuristic_images_seen

    return heuristic_images_seen(num, cfg.schedule)


def estimated_images_seen(run: PlannedRun) -> str:
    """:func:`planned_images_seen` as the dry run prints it."""
    cfg = run.config()
    seen = planned_images_seen(cfg)
    if seen is None:
        return "heuristic (needs the prepared set's size)"
    if cfg.schedule.images_seen > 0:
        return f"{seen:,}"
    return f"~{seen:,} (heuristic, ~{planned_train_images(cfg):,} train images)"


def print_plan(spec: SweepSpec, runs: list[PlannedRun]) -> None:
    print(f"sweep {spec.name}: {len(runs)} pretraining runs, ", end="")
    print(f"{sum(len(r.transfers) for r in runs)} transfer runs, base {spec.base}")
    width = max(len(r.name) for r in runs)
    for i, run in enumerate(runs):
        state = launchers.task_state(launchers.jobs_from_plan([run])[0].pretrain)
        print(f"{i:>3}  {run.name:<{width}}  images_seen {estimated_images_seen(run)}  [{state}]")
        for tr in run.transfers:
            shown = [o for o in tr.overrides if not o.startswith(("name=", "runs_dir="))]
            print(f"       -> {tr.name}  ({Path(tr.config).name} {' '.join(shown)})")


# ---------------------------------------------------------------------------------------------
# launching


def write_manifest(spec: SweepSpec, spec_path: str, runs: list[PlannedRun]) -> Path:
    """`<runs_dir>/_sweeps/<name>.json`: which runs this sweep made (the results index reads
    it to say which sweep produced a row)."""
    runs_dir = Path(runs[0].runs_dir)
    path = runs_dir / SWEEPS_SUBDIR / f"{spec.name}.json"
    manifest = {
        "sweep": spec.name,
        "spec": str(spec_path),
        "written": time.strftime("%Y-%m-%d %H:%M:%S"),
        "runs": [
            {"name": r.name, "axes": r.axes, "transfers": [t.name for t in r.transfers]}
            for r in runs
        ],
    }
    atomic_write_json(path, manifest)
    return path


def launch(
    spec: SweepSpec,
    runs: list[PlannedRun],
    launcher: str,
    runner: launchers.Runner | None = None,
    wait: bool = True,
    at_once: int = 1,
) -> launchers.SweepReport:
    jobs = launchers.jobs_from_plan(runs)
    if launcher == "local":
        return launchers.launch_local(jobs, runner, at_once)
    folder = Path(spec.slurm.log_dir or Path(runs[0].runs_dir) / SWEEPS_SUBDIR / spec.name)
    executor = launchers.make_executor(launcher, folder / "submitit", spec.slurm, spec.name)
    return launchers.launch_submitit(jobs, executor, runner, wait=wait)


def slurm_overrides(spec: SweepSpec) -> list[str]:
    """Make each run's trainer match the allocation (one task per GPU, Lightning's SLURM DDP)."""
    s = spec.slurm
    out = [f"trainer.devices={s.gpus_per_node}", f"trainer.num_nodes={s.nodes}"]
    if s.gpus_per_node * s.nodes > 1:
        out.append("trainer.strategy=ddp")
    return out


def resolved_configs(args: argparse.Namespace) -> list[tuple[str, Any]]:
    """``--print-config``: the spec with everything the command adds folded in, so it alone
    plans the same runs."""
    spec = load_spec(args.spec)
    extra = list(args.overrides)
    if args.launcher == "slurm":
        extra = [*slurm_overrides(spec), *extra]
    spec.overrides = [*spec.overrides, *extra]  # expand() applies the command's right after
    for tr in (*spec.transfers, *spec.baselines):
        tr.overrides = [*tr.overrides, *args.transfer_set]
    spec.runs_dir = args.runs_dir or spec.runs_dir
    return [("", spec)]


def run(args: argparse.Namespace, runner: launchers.Runner | None = None) -> int:
    spec = load_spec(args.spec)
    extra = list(args.overrides)
    params: dict = {}
    if args.from_wandb:
        params, extra = wandb_sweep.split_wandb_args(spec, extra)
    if args.launcher == "slurm":
        extra = [*slurm_overrides(spec), *extra]
    runs = expand(spec, extra, runs_dir=args.runs_dir, transfer_overrides=args.transfer_set)
    if args.from_wandb:
        params = params or wandb_sweep.params_from_wandb_config()
        runs = [wandb_sweep.select_run(spec, runs, params)]
    if args.only:
        unknown = set(args.only) - {r.name for r in runs}
        if unknown:
            raise UserInputError(f"--only: not runs of this sweep: {', '.join(sorted(unknown))}")
        runs = [r for r in runs if r.name in args.only]
    if args.dry_run:
        print_plan(spec, runs)
        return 0
    if args.launcher == "wandb-export":
        sweep_cfg = wandb_sweep.wandb_sweep_config(
            spec, args.spec, runs, list(args.overrides), args.transfer_set
        )
        out = Path(args.out or Path(runs[0].runs_dir) / SWEEPS_SUBDIR / f"{spec.name}.wandb.yaml")
        atomic_write_text(out, yaml.safe_dump(sweep_cfg, sort_keys=False))
        print(f"wrote {out}: `wandb sweep {out}` then `wandb agent <sweep id>`")
        return 0
    if args.jobs < 1 or (args.jobs > 1 and args.launcher != "local"):
        raise UserInputError(
            f"--jobs {args.jobs}: give a number >= 1, with --launcher local "
            "(submitit and SLURM run their jobs at once by themselves)"
        )
    write_manifest(spec, args.spec, runs)
    wait = not args.no_wait and args.launcher != "slurm"
    report = launch(spec, runs, args.launcher, runner, wait=wait, at_once=args.jobs)
    print(f"sweep {spec.name}: " + "\n".join(report.lines()))
    if report.after:
        atomic_write_text(
            Path(runs[0].runs_dir) / SWEEPS_SUBDIR / f"{spec.name}.status.json",
            json.dumps({"before": report.before, "after": report.after}, indent=2) + "\n",
        )
    return 1 if report.failed() else 0
