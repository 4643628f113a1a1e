"""`python -m experiments pretrain <config> [overrides]`: hashtag pretraining into runs/<name>/.

:func:`run_pretrain` builds the datamodule (``datamodules.pretrain.HashtagDataModule``), the
:class:`~lightning_modules.pretrain.HashtagPretrainer` and a Lightning Trainer, then writes
``runs/<name>/``: ``config.yaml`` (resolved), ``checkpoints/`` (``last.ckpt`` every
``trainer.checkpoint_every_n_steps`` optimizer steps and at the end), ``logs/`` (CSV, W&B
offline; TensorBoard with ``logging.tensorboard=true``) and finally ``metrics.json`` (with the
provenance: commit, versions, command line). Rerunning the same command resumes from
``checkpoints/last.ckpt`` (mid-epoch: model, optimizer, schedule, datamodule position, RNG) or
returns at once when ``metrics.json`` says the run is complete. ``ckpt_path=<file>`` resumes
from a chosen checkpoint of this run, or forks another run's into a new run folder
(:mod:`experiments.resume`). Under SLURM, the time-limit signal (submitit's USR2) makes the run
checkpoint at its next step and requeue the job (:mod:`experiments.requeue`); the requeued run
resumes from the newest checkpoint.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

from datamodules.axes import NAME_PREFIXES, axes_from_config
from datamodules.errors import UserInputError
from experiments import console, resume
from experiments.cli import add_config_arguments, config_from_args
from experiments.config import RunConfig, to_dict
from experiments.loggers import run_loggers
from experiments.resume import Parent
from experiments.rundir import RunDir


def _fmt_number(x: float) -> str:
    if float(x).is_integer():
        x = int(x)
        for unit, div in (("B", 10**9), ("M", 10**6), ("k", 10**3)):
            if x >= div and x % (div // 10) == 0:
                return f"{x / div:g}{unit}"
        return str(x)
    return f"{x:g}"


def default_run_name(cfg: RunConfig) -> str:
    """A name that reads as the run's axes, e.g. ``rx-tiny_synthetic-1-wordnet_samp-sqrt_noise-0_seed-0``."""
    d = cfg.data
    vocab = d.vocab.name + (f"{d.vocab.top_k}" if d.vocab.top_k else "")
    parts = [
        cfg.model.name,
        f"{d.source.name}-{_fmt_number(d.write.scale)}-{vocab}",
        _named("data.loading.sampling", d.loading.sampling),
        _named("data.loading.label_noise", _fmt_number(d.loading.label_noise)),
        _named("seed", cfg.seed),
    ]
    if cfg.model.loss != "softmax":
        parts.append(_named("model.loss", cfg.model.loss))
    return "_".join(parts)


def _named(key: str, value: Any) -> str:
    """``<prefix>-<value>``, the axis's run-name prefix (:data:`datamodules.axes.NAME_PREFIXES`)."""
    return f"{NAME_PREFIXES[key]}-{value}"


def axes(cfg: RunConfig, datamodule: Any) -> dict:
    """The paper's axes of a pretraining run, as metrics.json records them."""
    images = int(getattr(datamodule, "num_train", 0) or 0)
    return axes_from_config(to_dict(cfg), int(datamodule.vocab_size), images)


def _make_datamodule(cfg: RunConfig):
    from datamodules.pretrain import HashtagDataModule  # lazy: FFCV is heavy to import

    return HashtagDataModule(cfg.data, cfg.seed)


def _ensure_ready(datamodule: Any) -> None:
    """vocab_size / num_train may only exist after prepare_data + setup (prepared shards)."""
    try:
        ready = datamodule.vocab_size is not None and datamodule.num_train is not None
    except Exception:
        ready = False
    if not ready:
        datamodule.prepare_data()
        datamodule.setup("fit")


def _hashtags(datamodule: Any) -> list[str]:
    vocab = getattr(datamodule, "vocab", None)
    if vocab is not None and getattr(vocab, "hashtags", None) is not None:
        return list(vocab.hashtags)
    return list(getattr(datamodule, "hashtags", []) or [])


def _resume_checkpoint(run: RunDir) -> Path | None:
    """The newest of checkpoints/last.ckpt and a SLURM requeue checkpoint (hpc_ckpt_*.ckpt)."""
    candidates = [p for p in [run.last_checkpoint()] if p is not None]
    candidates += list(run.path.glob("hpc_ckpt_*.ckpt"))
    return max(candidates, key=lambda p: p.stat().st_mtime) if candidates else None


def resolve_precision(trainer_cfg) -> str:
    if trainer_cfg.precision != "auto":
        return trainer_cfg.precision
    import torch

    gpu = trainer_cfg.accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available()
    return "bf16-mixed" if gpu else "32-true"


def build_trainer(cfg: RunConfig, run: RunDir, *, max_steps: int, batches_per_val: int | None):
    """The Lightning Trainer: DDP/SLURM/torchrun detection, checkpoints, loggers, precision."""
    import lightning as L
    from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
    from lightning.pytorch.plugins.environments import SLURMEnvironment

    t = cfg.trainer
    callbacks = [
        ModelCheckpoint(
            dirpath=str(run.checkpoints),
            every_n_train_steps=max(1, t.checkpoint_every_n_steps),
            save_top_k=0,
            save_last=True,
        )
    ]
    loggers = run_loggers(cfg, run)
    if loggers:
        callbacks.append(LearningRateMonitor(logging_interval="step"))
    bar = console.progress_bar()
    if bar is not None:
        callbacks.append(bar)
    plugins = None
    if SLURMEnvironment.detect():  # requeue: our callback at a step boundary, not Lightning's
        from experiments.requeue import RequeueOnSignal

        plugins = [SLURMEnvironment(auto_requeue=False)]
        callbacks.append(RequeueOnSignal())
    val_kwargs: dict[str, Any] = {"check_val_every_n_epoch": 1}
    if batches_per_val:
        val_kwargs = {"val_check_interval": batches_per_val, "check_val_every_n_epoch": None}
    return L.Trainer(
        default_root_dir=str(run.path),
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=t.num_nodes,
        strategy=t.strategy,
        precision=resolve_precision(t),
        max_steps=max_steps,
        max_epochs=-1,
        accumulate_grad_batches=cfg.schedule.accumulate,
        log_every_n_steps=t.log_every_n_steps,
        limit_val_batches=t.limit_val_batches or 1.0,
        deterministic=t.deterministic,
        callbacks=callbacks,
        logger=loggers or False,
        plugins=plugins,
        num_sanity_val_steps=0,
        enable_model_summary=False,
        **val_kwargs,
    )


def _world_size(cfg: RunConfig) -> int:
    """Devices x nodes exactly as Lightning resolves them (devices='auto', -1, lists, SLURM)."""
    import lightning as L

    probe = L.Trainer(
        accelerator=cfg.trainer.accelerator,
        devices=cfg.trainer.devices,
        num_nodes=cfg.trainer.num_nodes,
        strategy=cfg.trainer.strategy,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    return int(probe.world_size)


def _plan_run(cfg: RunConfig) -> tuple[RunDir, Parent | None, str]:
    """The run folder (``cfg.name`` filled in; not created yet), the ``ckpt_path`` checkpoint,
    and whether that is a resume or a fork."""
    base = cfg.name or default_run_name(cfg)
    if not cfg.ckpt_path:
        cfg.name = base
        return RunDir(Path(cfg.runs_dir) / base), None, ""
    parent = resume.read_parent(cfg.ckpt_path)
    cfg.name, mode = resume.run_name(cfg.runs_dir, base, bool(cfg.name), parent)
    return RunDir(Path(cfg.runs_dir) / cfg.name), parent, mode


def run_pretrain(cfg: RunConfig, datamodule: Any = None) -> Path:
    """Pretrain (or resume, fork, or skip when complete) and return the run directory."""
    import lightning as L

    from lightning_modules.backbones import load_weights
    from lightning_modules.model_config import LOSS_NAMES
    from lightning_modules.optim import num_steps, total_images
    from lightning_modules.pretrain import HashtagPretrainer, global_batch_size, per_device_batch

    if cfg.schedule.accumulate < 1:
        raise UserInputError("schedule.accumulate must be >= 1")
    if cfg.model.loss not in LOSS_NAMES:
        raise UserInputError(
            f"model.loss must be one of {', '.join(LOSS_NAMES)}, got '{cfg.model.loss}'"
        )
    run, parent, mode = _plan_run(cfg)
    if run.is_complete():
        if parent is not None:
            resume.check_complete_run(run, parent)
        print(f"pretrain: {run.path} is complete (metrics.json); nothing to do")
        return run.path
    if cfg.schedule.global_batch:  # the per-device batch for this world size
        cfg.data.loading.batch_size = per_device_batch(
            cfg.schedule.global_batch, _world_size(cfg), cfg.schedule.accumulate
        )
    if parent is not None:  # on the resolved config, as the checkpoint saved its own
        resume.check_compatible(parent, to_dict(cfg))
    run = RunDir.create(cfg.runs_dir, cfg.name)
    run.write_config(cfg)
    L.seed_everything(cfg.seed, workers=True, verbose=False)

    dm = datamodule if datamodule is not None else _make_datamodule(cfg)
    _ensure_ready(dm)
    world = _world_size(cfg)
    global_batch = global_batch_size(cfg.data.loading.batch_size, world, cfg.schedule.accumulate)
    images = total_images(cfg.schedule, int(dm.num_train))
    max_steps = num_steps(images, global_batch)
    batches_per_val = None
    if cfg.trainer.val_every_images:
        steps = math.ceil(cfg.trainer.val_every_images / global_batch)
        batches_per_val = steps * cfg.schedule.accumulate

    model = HashtagPretrainer(
        to_dict(cfg), int(dm.vocab_size), _hashtags(dm), num_train=int(dm.num_train)
    )
    start_ckpt = _resume_checkpoint(run)
    if parent is not None:
        if parent.global_step > max_steps:
            raise UserInputError(
                f"ckpt_path={parent.path} is at step {parent.global_step}, past the end of this "
                f"schedule ({max_steps} steps of {global_batch} = {max_steps * global_batch:,} "
                "images); raise schedule.images_seen"
            )
        start_ckpt = resume.start_checkpoint(run, parent, start_ckpt, mode)
        if start_ckpt == parent.path:
            verb = "resuming" if mode == "resume" else "forking"
            print(f"pretrain: {verb} {parent.path} (step {parent.global_step}) -> {run.path}")
    if start_ckpt is None and cfg.model.weights:
        load_weights(model.net, cfg.model.weights)
    trainer = build_trainer(cfg, run, max_steps=max_steps, batches_per_val=batches_per_val)
    start = time.time()
    trainer.fit(model, datamodule=dm, ckpt_path=str(start_ckpt) if start_ckpt else None)
    final_list = trainer.validate(model, datamodule=dm, verbose=False)
    if not trainer.is_global_zero:
        return run.path
    final = {
        "loss": float(final_list[0]["val/loss"]),
        "precision_at_1": float(final_list[0]["val/precision_at_1"]),
        "precision_at_5": float(final_list[0]["val/precision_at_5"]),
    }
    history = [*model.val_history, final]
    best = max(history, key=lambda e: e["precision_at_1"])
    metrics = {
        "status": "complete",
        "kind": "pretrain",
        "name": run.name,
        "axes": axes(cfg, dm),
        "images_seen": int(trainer.global_step) * global_batch,
        "final": final,
        "best": {k: best[k] for k in ("loss", "precision_at_1", "precision_at_5")},
        "schedule": model.schedule,
        "checkpoint": str(run.checkpoints / "last.ckpt"),
        "wall_s": round(model.wall_s_before + (time.time() - start), 2),
    }
    if parent is not None:
        metrics["started_from"] = resume.started_from(run)
    run.write_metrics(metrics)
    print(
        f"pretrain: {run.name}: precision@1 {final['precision_at_1']:.4f}, "
        f"precision@5 {final['precision_at_5']:.4f}, loss {final['loss']:.4f} -> {run.path}"
    )
    return run.path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    run_pretrain(cfg)
    return 0
