"""Run directories: ``runs/<name>/`` with the resolved config, metrics.json, checkpoints, logs.

``metrics.json`` always records the provenance of the process that wrote it (git commit and
dirty flag, library versions, the command line: :func:`datamodules.provenance.provenance`).

Every file is written atomically (a temporary name in the same folder, then ``os.replace``), so
a run that dies leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from datamodules.io import atomic_write_bytes, atomic_write_text
from datamodules.io import atomic_write_json as _write_json
from datamodules.provenance import provenance

__all__ = ["atomic_write_bytes", "atomic_write_text", "atomic_write_json", "read_json", "RunDir"]

METRICS_FILE = "metrics.json"
CONFIG_FILE = "config.yaml"
STARTED_FROM_FILE = "started_from.json"  # pretrain ckpt_path=: the checkpoint this run began at


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    """A run record as JSON (:func:`datamodules.io.atomic_write_json`); what JSON has no type
    for (a path, a numpy scalar) is written as its text."""
    return _write_json(path, obj, default=str)


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


class RunDir:
    """One run's folder. ``metrics.json`` with ``"status": "complete"`` marks a finished run."""

    def __init__(self, root: str | Path):
        self.path = Path(root)

    @classmethod
    def create(cls, runs_dir: str | Path, name: str) -> RunDir:
        run = cls(Path(runs_dir) / name)
        (run.path / "checkpoints").mkdir(parents=True, exist_ok=True)
        return run

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def write_config(self, cfg: Any) -> Path:
        from experiments.config import to_yaml

        return atomic_write_text(self.config_path, to_yaml(cfg))

    @property
    def started_from_path(self) -> Path:
        return self.path / STARTED_FROM_FILE

    def write_metrics(self, metrics: dict) -> Path:
        """metrics.json, with ``provenance`` added unless the caller gave one."""
        return atomic_write_json(self.metrics_path, {"provenance": provenance(), **metrics})

    def read_metrics(self) -> dict | None:
        if not self.metrics_path.is_file():
            return None
        try:
            return read_json(self.metrics_path)
        except json.JSONDecodeError:
            return None

    def is_complete(self) -> bool:
        metrics = self.read_metrics()
        return bool(metrics) and metrics.get("status") == "complete"

    def last_checkpoint(self) -> Path | None:
        last = self.checkpoints / "last.ckpt"
        return last if last.is_file() else None
