"""The Lightning loggers of a run: CSV always, Weights & Biases offline unless WANDB_MODE says so,
and Lightning's TensorBoardLogger when ``logging.tensorboard=true`` (into ``logs/tensorboard/``;
``tensorboard --logdir runs/`` then shows every run)."""

from __future__ import annotations

import hashlib
import importlib.util
import os
from typing import TYPE_CHECKING

from datamodules.errors import UserInputError
from experiments import console
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
        if not console.is_verbose():
            # W&B's process-wide setup applies WANDB_SILENT before wandb.init validates its
            # arguments (Lightning passes the deprecated `anonymous`, which W&B warns about)
            wandb.setup()
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
    if cfg.logging.tensorboard:
        loggers.append(tensorboard_logger(run))
    return loggers


def tensorboard_logger(run: RunDir):
    """Lightning's TensorBoardLogger writing ``run.path/logs/tensorboard/events.out.tfevents.*``
    (a resumed run appends a new event file to the same folder)."""
    if not any(importlib.util.find_spec(m) for m in ("tensorboard", "tensorboardX")):
        raise UserInputError(
            "logging.tensorboard=true needs the `tensorboard` package (pip install tensorboard), "
            "or set logging.tensorboard=false"
        )
    from lightning.pytorch.loggers import TensorBoardLogger

    return TensorBoardLogger(
        save_dir=str(run.path), name="logs", version="tensorboard", default_hp_metric=False
    )
