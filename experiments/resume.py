"""`pretrain <config> ckpt_path=<file>`: resume from, or fork from, a chosen checkpoint.

Lightning's ``trainer.fit(ckpt_path=...)`` restores the whole training state (weights,
optimizer, LR-scheduler step, loop counters, the datamodule's position in its epoch, RNG), so
both modes continue the checkpoint's run exactly:

- **resume**: the checkpoint lies in this run's own folder (``<runs_dir>/<name>``, the name from
  the config) and that run is not complete: training continues there from that checkpoint
  (which may be an older one than ``last.ckpt``: a roll-back).
- **fork**: any other checkpoint (another run's, a copied file, or one of a complete run, which
  is never reopened): training continues in a NEW run folder, ``<name>_fork-step<N>-<hash>``
  (``<hash>``: of the checkpoint's path and step), or in ``name=`` when the config names one.

The config may differ from the checkpoint's only where the restored state stays valid:
``schedule.*`` (but not ``accumulate``/``global_batch``), ``trainer.*`` (but not ``devices``/``num_nodes``),
``logging.*``, ``data.loading.num_workers``, ``data.cache_dir``. A longer or otherwise changed
schedule is the new schedule's learning-rate curve from the checkpoint's step on (the first step
after it still runs at the restored LR); one that ends before that step is an error. Other
changes (model, optimizer, data, seed, global batch) are one error line: starting a new recipe
from a checkpoint's weights alone is ``model.weights=<file>``.

``started_from.json`` in the run folder records the start (checkpoint, step, parent run, mode);
``metrics.json`` copies it. Rerunning the same command (a crash, a SLURM requeue) continues from
the run's own checkpoints written since that start, never from the parent again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datamodules.data_legacy import upgrade_config
from datamodules.errors import UserInputError
from experiments.rundir import RunDir, atomic_write_json, read_json

FORK_MAY_CHANGE = (
    "name",
    "runs_dir",
    "ckpt_path",
    "schedule.",
    "trainer.",
    "logging.",
    "transfer.",  # not read by pretraining
    "data.loading.num_workers",
    "data.cache_dir",
)
FORK_MUST_KEEP = (  # the global batch: steps of the checkpoint must mean the same images
    "schedule.accumulate",
    "schedule.global_batch",
    "trainer.devices",
    "trainer.num_nodes",
)


@dataclass(frozen=True)
class Parent:
    """The checkpoint named by ``ckpt_path``: where it is, its step and its run's config."""

    path: Path
    global_step: int
    config: dict

    @property
    def run(self) -> str:
        """The run folder the checkpoint belongs to (``<run>/checkpoints/x.ckpt``, ``<run>/x.ckpt``)."""
        folder = self.path.parent
        return folder.parent.name if folder.name == "checkpoints" else folder.name

    @property
    def tag(self) -> str:
        digest = hashlib.sha1(f"{self.path}@{self.global_step}".encode()).hexdigest()[:6]
        return f"step{self.global_step}-{digest}"

    def record(self, mode: str) -> dict[str, Any]:
        return {
            "mode": mode,
            "checkpoint": str(self.path),
            "global_step": self.global_step,
            "run": self.run,
        }


def read_parent(ckpt_path: str) -> Parent:
    """The checkpoint's step and config, or one error line (missing, unreadable, not ours)."""
    import torch

    path = Path(ckpt_path).expanduser()
    if not path.is_file():
        raise UserInputError(f"ckpt_path={ckpt_path}: no such file")
    path = path.resolve()
    try:  # mmap: the tensors are not read, only the header and the small objects
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserInputError(
            f"ckpt_path={ckpt_path}: cannot read the checkpoint: {first}"
        ) from None
    config = (ckpt.get("hyper_parameters") or {}).get("config") if isinstance(ckpt, dict) else None
    if not isinstance(config, dict) or "global_step" not in ckpt:
        raise UserInputError(
            f"ckpt_path={ckpt_path}: not a pretraining checkpoint (no global_step and run config);"
            " to start from plain weights use model.weights=<file>"
        )
    # a checkpoint written before the data sections holds the flat layout: compared as the new
    return Parent(path=path, global_step=int(ckpt["global_step"]), config=upgrade_config(config))


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(obj, dict):
        return {prefix: obj}
    out: dict[str, Any] = {}
    for key, value in obj.items():
        out.update(_flatten(value, f"{prefix}{key}." if isinstance(value, dict) else prefix + key))
    return out


def _may_change(key: str) -> bool:
    if key in FORK_MUST_KEEP:
        return False
    return any(key == p or (p.endswith(".") and key.startswith(p)) for p in FORK_MAY_CHANGE)


def incompatible_keys(parent_config: dict, config: dict) -> list[str]:
    """``key (checkpoint -> config)`` for every setting the restored state cannot follow.

    Keys that exist on one side only (a schema newer or older than the checkpoint) are skipped.
    """
    old, new = _flatten(parent_config), _flatten(config)
    return [
        f"{key} ({old[key]!r} -> {new[key]!r})"
        for key in sorted(old.keys() & new.keys())
        if old[key] != new[key] and not _may_change(key)
    ]


def check_compatible(parent: Parent, config: dict) -> None:
    diffs = incompatible_keys(parent.config, config)
    if diffs:
        raise UserInputError(
            f"ckpt_path={parent.path}: continuing a checkpoint keeps its model, optimizer, data, "
            f"seed and global batch, but these differ: {', '.join(diffs)}; drop those overrides, "
            "or start a new recipe from its weights only with model.weights=<file>"
        )


def _inside(path: Path, folder: Path) -> bool:
    return path.is_relative_to(folder.resolve())


def run_name(runs_dir: str, base: str, explicit: bool, parent: Parent) -> tuple[str, str]:
    """``(run name, "resume" | "fork")`` for a start from ``parent`` (see the module docstring).

    ``base`` is the config's name (``explicit``) or the one derived from it.
    """
    home = RunDir(Path(runs_dir) / base)
    in_home = _inside(parent.path, home.path)
    if in_home and not home.is_complete():
        return base, "resume"
    if explicit and not in_home:
        return base, "fork"
    return f"{base}_fork-{parent.tag}", "fork"


def started_from(run: RunDir) -> dict | None:
    if not run.started_from_path.is_file():
        return None
    try:
        return read_json(run.started_from_path)
    except ValueError:
        return None


def _same_start(record: dict | None, parent: Parent) -> bool:
    return bool(record) and (record.get("checkpoint"), record.get("global_step")) == (
        str(parent.path),
        parent.global_step,
    )


def check_complete_run(run: RunDir, parent: Parent) -> None:
    """A complete run folder is this fork's (rerun: nothing to do) or an error."""
    if not _same_start((run.read_metrics() or {}).get("started_from"), parent):
        raise UserInputError(
            f"{run.path} is a complete run that did not start from {parent.path}; "
            "give the fork another name=<new name>"
        )


def start_checkpoint(run: RunDir, parent: Parent, own: Path | None, mode: str) -> Path:
    """The checkpoint to pass to ``trainer.fit``: the run's own newest one when it was written
    since this same start (a rerun after a crash or requeue), else ``parent`` (recorded now)."""
    record = started_from(run)
    same = _same_start(record, parent)
    if same and own is not None:
        if own.stat().st_mtime > run.started_from_path.stat().st_mtime:
            return own
    elif own is not None and mode == "fork":
        raise UserInputError(
            f"{run.path} already holds checkpoints of a run that did not start from "
            f"{parent.path}; give the fork another name=<new name>"
        )
    atomic_write_json(run.started_from_path, parent.record(mode))
    return parent.path
