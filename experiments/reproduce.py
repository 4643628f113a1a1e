"""`python -m experiments reproduce mini`: every sweep of a suite, run, then its results folder.

    reproduce mini --dry-run       every run of every sweep, its state and an estimated time
    reproduce mini                 run what is not complete (resumable: rerun it after a stop),
                                   then build results/mini/ from the run directories
    reproduce mini --tables-only   only build results/mini/ from the run directories
    reproduce mini --from-records  rebuild results/mini/ from its committed per-run records
                                   (records.jsonl), without any run directory

A suite ``S`` is the sweeps ``configs/sweeps/*_S.yaml`` and the tables config
``configs/tables/S.yaml``; runs go to that config's ``runs_dir`` (``--runs-dir``) and the
results folder is its ``output_dir`` (``--out``): the results index (``results.csv``,
``records.jsonl``), the tables (Markdown, CSV, LaTeX), the figures (PNG), the scaling fits and
``findings.md``. Sweeps run through :mod:`experiments.sweep` (the local launcher by default),
which skips complete runs and resumes checkpointed ones. Extra ``key=value`` arguments are
run-config overrides for every pretraining run, as for ``sweep``.

The dry run's time is an estimate from this machine's own complete runs under ``runs_dir``
(images seen per second of pretraining, per model where that model has run; mean seconds per
transfer) applied to the pending runs; without a complete run there is nothing to time and it
says so (``--images-per-s`` supplies a rate). Dataset preparation is not counted.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

from datamodules.errors import UserInputError
from experiments import launchers, results, sweep, tables
from experiments.config import CONFIGS_DIR, load_config
from experiments.sweep_spec import expand, load_spec


def suites(configs: Path = CONFIGS_DIR) -> list[str]:
    """Suites with a tables config and at least one sweep."""
    names = [p.stem for p in sorted((configs / "tables").glob("*.yaml"))]
    return [s for s in names if sweep_paths(s, configs=configs)]


def sweep_paths(
    suite: str, only: list[str] | None = None, configs: Path = CONFIGS_DIR
) -> list[Path]:
    """<configs>/sweeps/*_<suite>.yaml in name order (``only``: those sweep names)."""
    paths = sorted((configs / "sweeps").glob(f"*_{suite}.yaml"))
    paths = [p for p in paths if not p.name.startswith("_")]
    if only:
        unknown = sorted(set(only) - {p.stem for p in paths})
        if unknown:
            raise UserInputError(
                f"--sweeps: {', '.join(unknown)} not in suite {suite}; "
                f"its sweeps: {', '.join(p.stem for p in paths)}"
            )
        paths = [p for p in paths if p.stem in only]
    return paths


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("suite", help="which suite: configs/sweeps/*_<suite>.yaml, e.g. mini")
    parser.add_argument("overrides", nargs="*", help="run-config overrides for every run (k=v)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", help="list the runs and a time estimate")
    mode.add_argument(
        "--tables-only", action="store_true", help="build the results folder, run nothing"
    )
    mode.add_argument(
        "--from-records",
        action="store_true",
        help="rebuild the results folder from its records.jsonl (no run directories)",
    )
    parser.add_argument("--runs-dir", default="", help="default: the tables config's runs_dir")
    parser.add_argument("--out", default="", help="default: the tables config's output_dir")
    parser.add_argument("--sweeps", nargs="+", default=None, metavar="NAME", help="only these")
    parser.add_argument(
        "--launcher", choices=[x for x in sweep.LAUNCHERS if x != "wandb-export"], default="local"
    )
    launchers.add_jobs_argument(parser)
    parser.add_argument(
        "--configs-dir",
        default=str(CONFIGS_DIR),
        help="where the suite's sweeps/ and tables/ live (default: this checkout's configs/)",
    )
    parser.add_argument(
        "--all",
        action="store_true",
        help="dry run: estimate every run, complete or not (the whole suite from scratch)",
    )
    parser.add_argument(
        "--images-per-s",
        type=float,
        default=0.0,
        help="dry run: pretraining rate to estimate with (default: measured from complete runs)",
    )


def tables_config(args: argparse.Namespace) -> tables.TablesConfig:
    configs = Path(args.configs_dir)
    path = configs / "tables" / f"{args.suite}.yaml"
    if args.suite not in suites(configs):
        known = ", ".join(suites(configs)) or "none"
        raise UserInputError(f"unknown suite '{args.suite}' under {configs}; suites: {known}")
    cfg: tables.TablesConfig = load_config(path, schema=tables.TablesConfig)
    cfg.runs_dir = args.runs_dir or cfg.runs_dir
    cfg.output_dir = args.out or cfg.output_dir
    return cfg


# ---------------------------------------------------------------------------------------------
# the dry run's estimate


@dataclass
class Rates:
    """Measured on this machine's complete runs: images seen per second, seconds per transfer.

    A run's time is from its start in ``sweep.log`` to its ``metrics.json`` (process start and
    data preparation included) where the sweep launcher recorded the start, else its ``wall_s``.
    """

    by_model: dict[str, float]
    overall: float  # 0 = nothing measured
    transfer_s: float  # 0 = nothing measured
    pretrain_runs: int = 0
    transfer_runs: int = 0

    @classmethod
    def measure(cls, runs_dir: str | Path, override: float = 0.0) -> Rates:
        runs, _ = results.read_runs(runs_dir)
        seen: dict[str, list[float]] = {}
        walls: dict[str, list[float]] = {}
        transfers = []
        for m in runs:
            wall = launchers.elapsed_s(Path(runs_dir) / m["name"]) or float(m.get("wall_s") or 0)
            if wall <= 0:
                continue
            if m["kind"] == "pretrain" and m.get("images_seen"):
                model = str((m.get("axes") or {}).get("model", ""))
                seen.setdefault(model, []).append(float(m["images_seen"]))
                walls.setdefault(model, []).append(wall)
            elif m["kind"] == "transfer":
                transfers.append(wall)
        by_model = {k: sum(seen[k]) / sum(walls[k]) for k in seen}
        total_seen = sum(sum(v) for v in seen.values())
        total_wall = sum(sum(v) for v in walls.values())
        overall = override or (total_seen / total_wall if total_wall else 0.0)
        return cls(
            by_model={} if override else by_model,
            overall=overall,
            transfer_s=sum(transfers) / len(transfers) if transfers else 0.0,
            pretrain_runs=sum(len(v) for v in seen.values()),
            transfer_runs=len(transfers),
        )

    def pretrain_s(self, model: str, images_seen: int | None) -> float | None:
        rate = self.by_model.get(model) or self.overall
        return None if not rate or images_seen is None else images_seen / rate


def human_time(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def dry_run(
    paths: list[Path],
    overrides: list[str],
    runs_dir: str,
    rates: Rates,
    everything: bool = False,
    at_once: int = 1,
) -> int:
    """List every run with its state; estimate the pending ones (``everything``: all of them,
    as a fresh runs folder would run them, with the rates measured on this one). With
    ``at_once`` jobs at a time, the runs' summed times are divided by it: the rates should then
    come from runs that also ran ``at_once`` at a time (each is slower, several overlap)."""
    total_s, unknown, pending_runs = 0.0, 0, 0
    counted: set[str] = set()  # runs already estimated in an earlier sweep
    for path in paths:
        spec = load_spec(path)
        runs = expand(spec, overrides, runs_dir=runs_dir)
        jobs = launchers.jobs_from_plan(runs)
        states = [launchers.task_state(j.pretrain) for j in jobs]
        # a run shared by several sweeps (a baseline, the default setting) runs once: in the
        # first sweep that plans it
        pending_t = [
            t
            for j in jobs
            for t in j.transfers
            if (everything or launchers.task_state(t) != "complete") and t.name not in counted
        ]
        counted.update(t.name for t in pending_t)
        sweep_s, sweep_unknown = 0.0, 0
        lines = []
        for run, state in zip(runs, states):
            cfg = run.config()
            seen = sweep.planned_images_seen(cfg)
            todo = (state != "complete" or everything) and run.name not in counted
            counted.add(run.name)
            est = rates.pretrain_s(cfg.model.name, seen) if todo else None
            if todo:
                pending_runs += 1
                sweep_unknown += est is None
                sweep_s += est or 0.0
            shown = f"{seen:,}" if seen is not None else "heuristic (size known after prepare)"
            when = "" if not todo else f"  ~{human_time(est)}" if est else "  ~?"
            lines.append(f"  {run.name}  images_seen {shown}  [{state}]{when}")
            for t in run.transfers:
                lines.append(f"    -> {t.name}")
        if rates.transfer_s:
            sweep_s += rates.transfer_s * len(pending_t)
        else:
            sweep_unknown += len(pending_t)
        sweep_s /= max(1, at_once)
        counts = {s: states.count(s) for s in dict.fromkeys(states)}
        state_text = ", ".join(f"{n} {s}" for s, n in counts.items())
        if not sweep_unknown:
            estimate = human_time(sweep_s)
        else:
            estimate = f"{human_time(sweep_s)} + unknown" if sweep_s else "unknown"
        print(
            f"sweep {spec.name}: {len(runs)} pretraining runs ({state_text}), "
            f"{sum(len(r.transfers) for r in runs)} transfers ({len(pending_t)} pending); "
            f"estimated {estimate}"
        )
        print("\n".join(lines))
        total_s += sweep_s
        unknown += sweep_unknown
    print()
    if rates.overall:
        basis = (
            f"pretraining at {rates.overall:,.0f} images seen/s"
            + (f" ({rates.pretrain_runs} complete runs under {runs_dir})" if rates.by_model else "")
            + (
                f", transfers at {rates.transfer_s:.0f} s each ({rates.transfer_runs} complete)"
                if rates.transfer_s
                else ", transfers not timed yet"
            )
        )
        extra = f"; {unknown} runs not estimable" if unknown else ""
        which = f"all {pending_runs}" if everything else f"{pending_runs} pending"
        jobs = f" with {at_once} jobs at once" if at_once > 1 else ""
        print(f"estimated time for {which} runs{jobs}: {human_time(total_s)}{extra}")
        print(f"  ({basis}; each from its start to its end, where sweep.log has the start)")
    else:
        print(
            f"estimated time: unknown; no complete run under {runs_dir} to time from. Run one "
            "point first (`python -m experiments sweep <spec> --only <name>`) or pass "
            "--images-per-s"
        )
    return 0


# ---------------------------------------------------------------------------------------------
# the verb


def _sweep_args(path: Path, args: argparse.Namespace, runs_dir: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    sweep.add_arguments(parser)
    argv = [str(path), *args.overrides, "--runs-dir", runs_dir, "--launcher", args.launcher]
    argv += ["--jobs", str(args.jobs)]
    return parser.parse_args(argv)


def build(cfg: tables.TablesConfig, from_records: bool = False) -> dict[str, list[Path]]:
    df = None
    if from_records:
        df = results.read_records(Path(cfg.output_dir) / results.RECORDS_FILE)
    written = tables.build_all(cfg, df=df)
    for kind, paths in written.items():
        print(f"{kind}: " + ", ".join(str(p) for p in paths))
    return written


def run(args: argparse.Namespace) -> int:
    cfg = tables_config(args)
    if args.from_records:
        build(cfg, from_records=True)
        print(f"reproduce {args.suite}: rebuilt {cfg.output_dir} from its per-run records")
        return 0
    paths = sweep_paths(args.suite, args.sweeps, Path(args.configs_dir))
    if args.dry_run:
        rates = Rates.measure(cfg.runs_dir, args.images_per_s)
        return dry_run(paths, list(args.overrides), cfg.runs_dir, rates, args.all, args.jobs)
    failed = []
    if not args.tables_only:
        start = time.perf_counter()
        for path in paths:
            print(f"reproduce {args.suite}: sweep {path.stem}")
            if sweep.run(_sweep_args(path, args, cfg.runs_dir)) != 0:
                failed.append(path.stem)
        print(f"reproduce {args.suite}: sweeps done in {human_time(time.perf_counter() - start)}")
    build(cfg)
    if failed:
        print(f"reproduce {args.suite}: runs failed in {', '.join(failed)}; rerun to retry them")
        return 1
    print(f"reproduce {args.suite}: results in {cfg.output_dir}")
    return 0
