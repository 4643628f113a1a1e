"""The Lightning loggers of a run: CSV always, Weights & Biases offline unless WANDB_MODE says so."""

from __future__ import annotations

import hashlib
import os
from typing import TYPE_CHECKING

from experiments.config import to_dict

if TYPE_CHECKING:
    from experiments.config import RunConfig
    from experiments.rundir import RunDir


def run_loggers(cfg: RunConfig, run: RunDir) -> list:
    """Loggers writing under ``run.path/logs``; the W&B id is stable so a resumed run appends."""
    import wandb
    from lightning.pytorch.loggers import CSVLogger, WandbLogger

    loggers: list = []
    if cfg.logging.csv:
        loggers.append(CSVLogger(save_dir=str(run.path), name="logs", version=""))
    if cfg.logging.wandb:
        mode = os.environ.get("WANDB_MODE") or cfg.logging.wandb_mode
        loggers.append(
            WandbLogger(
                name=run.name,
                project=cfg.logging.wandb_project,
                save_dir=str(run.path / "logs"),
                id=hashlib.sha1(str(run.path.resolve()).encode()).hexdigest()[:16],
                resume="allow",
                offline=mode == "offline",
                mode=mode,
                config=to_dict(cfg),
                # metrics only: no console capture, no system-metrics sampler beside training
                settings=wandb.Settings(console="off", x_disable_stats=True),
            )
        )
    return loggers
