"""`python -m experiments transfer <config> pretrained=<run dir | .ckpt | weights file> [k=v ...]`

Transfers a network to a target task and writes ``runs/<name>/metrics.json``:

* ``transfer.protocol=linear``: frozen features (``transfer.features``: ``last`` = penultimate
  layer, ``all`` = every stage pooled) of the target's train and val images, extracted once and
  cached under ``<data.cache_dir>/features/``; multinomial logistic regression with its L2
  strength chosen by inner cross-validation on train (``transfer.l2_grid``, extended by a
  decade while the choice sits at an edge); top-1/top-5 on val, or with ``transfer.folds > 1``
  the mean and spread over stratified folds of train+val pooled.
* ``transfer.protocol=finetune``: the whole network with a new head (:class:`FineTuner`).

``transfer.pretrained=""`` transfers a seeded random network (the baseline; make it strong with
``transfer.features=all transfer.bn_recalibrate=true``). Target images are the same for every
seed and every network (the target is loaded with seed ``TARGET_SEED``); ``seed`` drives random
init, the probe's folds, and fine-tuning.

The default run name is ``{pretraining run | weights file stem | random-<model>}__{protocol}-
{target}[-{features}][-bnrecal][-k{folds}]_seed-{seed}``. A run whose metrics.json is complete
is skipped.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from datamodules.errors import UserInputError
from datamodules.transfer_config import FEATURE_KINDS, PROTOCOLS
from experiments.cli import add_config_arguments, config_from_args
from experiments.config import DataConfig, RunConfig
from experiments.loggers import run_loggers
from experiments.rundir import RunDir

TARGET_SEED = 0  # every seed and every network is evaluated on the same target images


def default_run_name(cfg: RunConfig) -> str:
    """``{weights}__{protocol}-{target}[-{features}][-bnrecal][-k{folds}]_seed-{seed}``."""
    from lightning_modules.backbone_loading import pretrained_label

    t = cfg.transfer
    weights = pretrained_label(t.pretrained) or f"random-{cfg.model.name}"
    parts = [t.protocol, t.target]
    if t.protocol == "linear":
        parts.append(t.features)
        if t.folds > 1:
            parts.append(f"k{t.folds}")
    if t.bn_recalibrate:
        parts.append("bnrecal")
    return f"{weights}__{'-'.join(parts)}_seed-{cfg.seed}"


def _check_config(cfg: RunConfig) -> None:
    t = cfg.transfer
    if t.protocol not in PROTOCOLS:
        raise UserInputError(f"transfer.protocol={t.protocol!r}: use one of {', '.join(PROTOCOLS)}")
    if t.features not in FEATURE_KINDS:
        raise UserInputError(
            f"transfer.features={t.features!r}: use one of {', '.join(FEATURE_KINDS)}"
        )
    if t.folds < 0 or t.folds == 1:
        raise UserInputError(
            f"transfer.folds={t.folds}: use 0 (the target's own train/val split) or k >= 2"
        )
    if t.protocol == "finetune" and t.folds > 1:
        raise UserInputError("transfer.folds > 1 applies to protocol=linear only")
    if t.images_seen < 1 or t.batch_size < 1:
        raise UserInputError("transfer.images_seen and transfer.batch_size must be >= 1")


# --------------------------------------------------------------------------------------------
# linear probe (on the features of lightning_modules.features)


def _l2_summary(choice) -> dict:
    return {
        "l2": choice.l2,
        "grid": choice.grid,
        "heldout_top1": choice.heldout_top1,
        "extensions": choice.extensions,
        "at_edge": choice.at_edge,
        "inner_splits": choice.inner_splits,
    }


def _kfold(cfg: RunConfig, backbone, files, grid) -> dict:
    """k-fold over train+val pooled, folds grouped by near-duplicate group; with
    ``bn_recalibrate`` the BN statistics of each fold come from its training part."""
    from lightning_modules.features import (
        extract_target_features,
        per_fold_bn_features,
        pooled_groups,
        select_features,
    )
    from lightning_modules.linear_probe import outer_folds, probe_fold, summarize_folds

    t = cfg.transfer
    g = pooled_groups(files)
    if t.bn_recalibrate:
        data = per_fold_bn_features(cfg, backbone, files)
        y = data["y"]
        folds = [
            (data[f"fold{k}_x"], data[f"fold{k}_train"], data[f"fold{k}_eval"])
            for k in range(t.folds)
        ]
        bn_images = [int(data[f"bn_images{k}"]) for k in range(t.folds)]
    else:
        feats = extract_target_features(cfg, backbone, files)
        x = np.concatenate([feats["train_x"], feats["val_x"]])
        y = np.concatenate([feats["train_y"], feats["val_y"]])
        splits = outer_folds(y, files.num_classes, t.folds, seed=cfg.seed, groups=g)
        folds, bn_images = [(x, tr, ev) for tr, ev in splits], []
    results = []
    for x, train_idx, eval_idx in folds:
        x = torch.as_tensor(select_features(x, backbone.net, t.features))
        results.append(
            probe_fold(x, y, train_idx, eval_idx, files.num_classes, grid, seed=cfg.seed, groups=g)
        )
    res = summarize_folds(results)
    out = {
        "feature_dim": int(x.shape[1]),
        "top1": res.top1,
        "top5": res.top5,
        "top1_std": res.top1_std,
        "top5_std": res.top5_std,
        "folds": t.folds,
        "fold_grouping": "near-duplicate groups (StratifiedGroupKFold)",
        "fold_top1": [f.top1 for f in res.folds],
        "fold_top5": [f.top5 for f in res.folds],
        "probe": [_l2_summary(f.l2) for f in res.folds],
    }
    if bn_images:
        out["bn_recalibration"] = "per fold, on its training part"
        out["bn_recalibration_images"] = bn_images
    return out


def _linear(cfg: RunConfig, backbone, files) -> dict:
    from lightning_modules.features import extract_target_features, select_features
    from lightning_modules.linear_probe import linear_probe

    t = cfg.transfer
    grid = [float(v) for v in t.l2_grid]
    if t.folds > 1:
        return _kfold(cfg, backbone, files, grid)
    feats = extract_target_features(cfg, backbone, files)
    train_x = select_features(feats["train_x"], backbone.net, t.features)
    result: dict[str, Any] = {"feature_dim": int(train_x.shape[1])}
    if "bn_images" in feats:
        result["bn_recalibration"] = "on the train split"
        result["bn_recalibration_images"] = int(feats["bn_images"])
    res = linear_probe(
        train_x,
        feats["train_y"],
        select_features(feats["val_x"], backbone.net, t.features),
        feats["val_y"],
        files.num_classes,
        grid,
        seed=cfg.seed,
        groups=files.groups()["train"],
    )
    result.update(
        top1=res.top1,
        top5=res.top5,
        top1_std=None,  # one split: no spread to report (use transfer.folds for one)
        top5_std=None,
        folds=1,
        probe=[_l2_summary(res.l2)],
    )
    return result


# --------------------------------------------------------------------------------------------
# fine-tuning


def _finetune_trainer(cfg: RunConfig, run: RunDir, total_steps: int):
    import lightning as L
    from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint

    t = cfg.trainer
    loggers = run_loggers(cfg, run)
    callbacks = [
        ModelCheckpoint(
            dirpath=str(run.checkpoints),
            every_n_train_steps=max(1, t.checkpoint_every_n_steps),
            save_top_k=0,
            save_last=True,
        )
    ]
    if loggers:
        callbacks.append(LearningRateMonitor(logging_interval="step"))
    precision = t.precision
    if precision == "auto":
        precision = (
            "bf16-mixed" if torch.cuda.is_available() and t.accelerator != "cpu" else "32-true"
        )
    return L.Trainer(
        default_root_dir=str(run.path),
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=t.num_nodes,
        strategy=t.strategy,
        precision=precision,
        max_steps=total_steps,
        max_epochs=-1,
        val_check_interval=total_steps,  # validate once, at the end of the schedule
        check_val_every_n_epoch=None,
        limit_val_batches=t.limit_val_batches or 1.0,
        log_every_n_steps=t.log_every_n_steps,
        deterministic=t.deterministic,
        callbacks=callbacks,
        logger=loggers or False,
        num_sanity_val_steps=0,
        enable_model_summary=False,
    )


def _finetune(cfg: RunConfig, backbone, files, run: RunDir) -> dict:
    import lightning as L

    from lightning_modules.features import target_datamodule
    from lightning_modules.finetune import FineTuner

    t = cfg.transfer
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    dm = target_datamodule(cfg, files)
    total_steps = max(1, math.ceil(t.images_seen / t.batch_size))
    model = FineTuner(
        backbone.net,
        files.num_classes,
        lr=t.lr,
        backbone_lr_mult=t.backbone_lr_mult,
        total_steps=total_steps,
        weight_decay=cfg.optim.weight_decay,
        momentum=cfg.optim.momentum,
        nesterov=cfg.optim.nesterov,
        wd_exclude_bn_bias=cfg.optim.wd_exclude_bn_bias,
        channels_last=cfg.trainer.channels_last and torch.cuda.is_available(),
    )
    trainer = _finetune_trainer(cfg, run, total_steps)
    trainer.fit(model, datamodule=dm, ckpt_path=run.last_checkpoint())
    metrics = trainer.callback_metrics
    if "val/top1" not in metrics:  # resumed after the last step: nothing was validated yet
        metrics = trainer.validate(model, datamodule=dm, verbose=False)[0]
    return {
        "top1": float(metrics["val/top1"]),
        "top5": float(metrics["val/top5"]),
        "val_loss": float(metrics["val/loss"]),
        "top1_std": None,
        "top5_std": None,
        "folds": 1,
        "finetune": {
            "images_seen": total_steps * t.batch_size,
            "steps": total_steps,
            "lr": t.lr,
            "backbone_lr_mult": t.backbone_lr_mult,
            "batch_size": t.batch_size,
        },
        "is_global_zero": trainer.is_global_zero,
    }


# --------------------------------------------------------------------------------------------
# entry points


def target_split(cfg: RunConfig) -> str:
    """Which images make the target (results group by it): for OpenClipart, the held-out
    split it was cut from; other targets have their own fixed split ("")."""
    if not cfg.transfer.target.startswith("openclipart"):
        return ""
    d = cfg.data
    return (
        f"holdout_fraction={d.source.holdout_fraction:g};"
        f"holdout_categories={','.join(sorted(d.source.holdout_categories))}"
    )


def heldout_data_config(cfg: RunConfig, pretrain_heldout: dict | None):
    """The data config whose held-out split builds an OpenClipart target: the pretraining run's.

    A target built from another split than the one its pretraining corpus held out would
    overlap the pretraining images (or miss some held-out ones). A project run's checkpoint
    records its split (:func:`lightning_modules.checkpoints.heldout_split`); where the transfer
    config leaves a setting at the schema default it is taken from the run, and an explicit
    different value is refused in one line."""
    data = cfg.data
    if not (pretrain_heldout and cfg.transfer.target.startswith("openclipart")):
        return data
    if pretrain_heldout.get("source") != "openclipart":
        return data
    default = DataConfig().source
    ours = {
        "holdout_fraction": float(data.source.holdout_fraction),
        "holdout_categories": sorted(data.source.holdout_categories),
    }
    adopted = {}
    for key, value in ours.items():
        theirs = pretrain_heldout[key]
        if value == theirs:
            continue
        schema_default = getattr(default, key)
        if isinstance(schema_default, list):
            schema_default = sorted(schema_default)
        if value != schema_default:
            raise UserInputError(
                f"transfer: data.source.{key}={value} differs from the pretraining run's {theirs}: "
                f"the target would overlap its pretraining images; pass "
                f"data.source.{key}={theirs} or omit it"
            )
        adopted[key] = theirs
    if not adopted:
        return data
    return dataclasses.replace(data, source=dataclasses.replace(data.source, **adopted))


def run_transfer(cfg: RunConfig) -> Path:
    """Transfer ``cfg.transfer.pretrained`` to ``cfg.transfer.target``; return the run dir."""
    from datamodules.transfer import ensure_target_files
    from lightning_modules.backbone_loading import describe, load_backbone
    from lightning_modules.published_weights import model_for

    _check_config(cfg)
    # a published name (resnext101_32x8d_wsl, ...) fixes the architecture, so config.yaml and
    # metrics.json record the network that is transferred, not the transfer config's default
    cfg = dataclasses.replace(cfg, model=model_for(cfg.transfer.pretrained, cfg.model))
    t = cfg.transfer
    name = cfg.name or default_run_name(cfg)
    existing = RunDir(Path(cfg.runs_dir) / name)
    if existing.is_complete():
        print(f"transfer: {name} is complete; skipping ({existing.metrics_path})")
        return existing.path
    start = time.perf_counter()
    backbone = load_backbone(t.pretrained, cfg.model, cfg.seed)  # bad weights fail before mkdir
    cfg = dataclasses.replace(cfg, data=heldout_data_config(cfg, backbone.info.get("heldout")))
    run = RunDir.create(cfg.runs_dir, name)
    run.write_config(cfg)
    files = ensure_target_files(t, cfg.data, seed=TARGET_SEED)
    if t.protocol == "linear":
        result = _linear(cfg, backbone, files)
    else:
        result = _finetune(cfg, backbone, files, run)
        if not result.pop("is_global_zero"):
            return run.path
    metrics = {
        "status": "complete",
        "kind": "transfer",
        "name": run.name,
        "protocol": t.protocol,
        "target": t.target,
        "features": t.features,
        "num_classes": files.num_classes,
        "num_train": files.num_train,
        "num_val": files.num_val,
        "seed": cfg.seed,
        **describe(backbone),
        "pretrained": t.pretrained,
        "model": cfg.model.name,
        "resolution": t.resolution,
        "bn_recalibrate": t.bn_recalibrate,
        "target_split": target_split(cfg),
        "max_per_class": t.max_per_class,
        "dedup_within_target": files.dedup_within,
        **result,
        "wall_s": round(time.perf_counter() - start, 2),
    }
    run.write_metrics(metrics)
    std = f" ± {metrics['top1_std']:.4f}" if metrics["top1_std"] is not None else ""
    print(
        f"transfer: {run.name}: top-1 {metrics['top1']:.4f}{std}, top-5 {metrics['top5']:.4f} "
        f"({files.num_classes} classes) -> {run.path}"
    )
    return run.path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    run_transfer(config_from_args(args))
    return 0
