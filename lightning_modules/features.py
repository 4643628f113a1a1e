"""Frozen features of a transfer target: what the linear probe is fitted on.

* :func:`recalibrate_batchnorm` re-estimates batch-norm statistics on target images with
  ``torch.optim.swa_utils.update_bn`` (train mode, momentum None = cumulative average, no grad):
  the honest way to make a random network's features usable, and harmless for a trained one.
* :func:`extract_split_features` runs the frozen network over an FFCV loader and returns the
  pooled features (``last`` = penultimate layer, ``all`` = every stage pooled) with the labels.
* :func:`extract_target_features` (the target's own train/val split) and
  :func:`per_fold_bn_features` (k-fold with BN statistics per fold) extract every stage once per
  (network, target, BN statistics) and cache it under ``<data.cache_dir>/features/``;
  :func:`select_features` slices the ``transfer.features`` protocol's columns out of them.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from datamodules.errors import UserInputError
from datamodules.io import atomic_write_bytes
from datamodules.transfer import TargetDataModule
from datamodules.transfer_config import FEATURE_KINDS
from lightning_modules.backbones import extract_features, feature_dim, normalize_images
from lightning_modules.linear_probe import outer_folds

if TYPE_CHECKING:
    from datamodules.data_config import DataConfig
    from datamodules.transfer import TargetFiles
    from datamodules.transfer_config import TransferConfig
    from lightning_modules.backbone_loading import Backbone


class RunConfig(Protocol):
    """What feature extraction reads of a run config (``experiments.config.RunConfig`` is one):
    the transfer section, the loader's workers and the cache folder, the seed."""

    seed: int
    data: DataConfig
    transfer: TransferConfig


BN_RECALIBRATION_IMAGES = 2048
FEATURE_CACHE_VERSION = 2  # 2: every-stage features, `last` sliced from them


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _images_only(loader, device: torch.device, max_images: int):
    """Normalised float images from ``loader`` until ``max_images`` have been yielded."""
    seen = 0
    for images, _ in loader:
        if seen >= max_images:
            break
        images = images[: max_images - seen].to(device, non_blocking=True)
        seen += len(images)
        yield normalize_images(images)


@torch.no_grad()
def recalibrate_batchnorm(
    net: nn.Module,
    loader,
    max_images: int = BN_RECALIBRATION_IMAGES,
    device: torch.device | None = None,
) -> int:
    """Replace every batch-norm layer's running statistics with their cumulative average over
    up to ``max_images`` images of ``loader`` (train-mode forward, no grad); returns how many
    images were used. Use a shuffled loader so the images cover the classes."""
    device = device or default_device()
    net.to(device)
    counter = {"n": 0}

    def counted():
        for x in _images_only(loader, device, max_images):
            counter["n"] += len(x)
            yield x

    torch.optim.swa_utils.update_bn(counted(), net)
    net.eval()
    return counter["n"]


@torch.no_grad()
def extract_split_features(
    net: nn.Module,
    loader,
    stages: str,
    device: torch.device | None = None,
    desc: str = "features",
) -> tuple[np.ndarray, np.ndarray]:
    """Pooled features float32 [N, D] and labels int64 [N] of every batch of ``loader``."""
    if stages not in FEATURE_KINDS:
        raise UserInputError(f"transfer.features must be one of {FEATURE_KINDS}, got '{stages}'")
    device = device or default_device()
    net.to(device).eval()
    feats, labels = [], []
    total = len(loader) if hasattr(loader, "__len__") else None
    for images, y in tqdm(loader, total=total, desc=desc, leave=False):
        x = normalize_images(images.to(device, non_blocking=True))
        feats.append(extract_features(net, x, stages).float().cpu())
        # clone: FFCV reuses its output buffers for later batches (on the CPU .cpu() is a no-op)
        labels.append(y.reshape(-1).long().cpu().clone())
    return torch.cat(feats).numpy(), torch.cat(labels).numpy()


def target_datamodule(cfg: RunConfig, files: TargetFiles) -> TargetDataModule:
    """The target's FFCV datamodule, shared by feature extraction and fine-tuning."""
    t = cfg.transfer
    return TargetDataModule(
        files,
        resolution=t.resolution,
        batch_size=t.batch_size,
        num_workers=cfg.data.loading.num_workers,
        seed=cfg.seed,
    )


def _feature_cache_path(
    cfg: RunConfig, backbone: Backbone, files: TargetFiles, extra: dict | None = None
) -> Path:
    """Every stage's pooled features are cached once per (network, target, BN statistics):
    ``last`` is a slice of ``all``, so both feature protocols share one extraction."""
    t = cfg.transfer
    seeded = backbone.init == "random" or t.bn_recalibrate  # the seed changes these features
    key = {
        "weights": backbone.identity,
        "target": files.dir.name,
        "resolution": t.resolution,
        "bn_recalibrate": t.bn_recalibrate,
        "seed": cfg.seed if seeded else None,
        "version": FEATURE_CACHE_VERSION,
        **(extra or {}),
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return Path(cfg.data.cache_dir) / "features" / f"{files.dir.name}-{digest}.npz"


def _cached(path: Path, compute) -> dict[str, np.ndarray]:
    if path.is_file():
        with np.load(path) as npz:
            return {k: npz[k] for k in npz.files}
    out = compute()
    buf = io.BytesIO()
    np.savez(buf, **out)
    atomic_write_bytes(path, buf.getvalue())
    return out


def select_features(x: np.ndarray, net: nn.Module, features: str) -> np.ndarray:
    """The ``features`` protocol's columns of every-stage (``all``) features: ``last`` is the
    last stage's pooled output, the final ``feature_dim(net, 'last')`` columns."""
    return x if features == "all" else x[:, x.shape[1] - feature_dim(net, "last") :]


def extract_target_features(
    cfg: RunConfig, backbone: Backbone, files: TargetFiles
) -> dict[str, np.ndarray]:
    """Train/val every-stage features and labels of the target, from the cache or computed and
    cached (BN statistics re-estimated on the train split when ``transfer.bn_recalibrate``)."""

    def compute() -> dict[str, np.ndarray]:
        dm = target_datamodule(cfg, files)
        device = default_device()
        # One shuffled loader over train: BN recalibration reads its first images (covering
        # the classes), then the same loader (already compiled) yields the train features.
        train_loader = dm.eval_loader("train", device, shuffle=True)
        out: dict[str, Any] = {}
        if cfg.transfer.bn_recalibrate:
            out["bn_images"] = np.int64(
                recalibrate_batchnorm(backbone.net, train_loader, device=device)
            )
        out["train_x"], out["train_y"] = extract_split_features(
            backbone.net, train_loader, "all", device, desc="train features"
        )
        out["val_x"], out["val_y"] = extract_split_features(
            backbone.net, dm.eval_loader("val", device), "all", device, desc="val features"
        )
        return out

    return _cached(_feature_cache_path(cfg, backbone, files), compute)


def _target_images(cfg: RunConfig, files: TargetFiles) -> tuple[torch.Tensor, np.ndarray]:
    """Every image of the target (train then val, file order) as uint8 [N,3,R,R], and labels."""
    dm = target_datamodule(cfg, files)
    images, labels = [], []
    for split in ("train", "val"):
        for x, y in dm.eval_loader(split, torch.device("cpu")):
            images.append(x.clone())  # FFCV reuses its output buffers
            labels.append(y.reshape(-1).long().clone())
    return torch.cat(images), torch.cat(labels).numpy()


def _batches(images: torch.Tensor, labels: np.ndarray, batch_size: int):
    for start in range(0, len(images), batch_size):
        yield (
            images[start : start + batch_size],
            torch.as_tensor(labels[start : start + batch_size]),
        )


def pooled_groups(files: TargetFiles) -> np.ndarray:
    groups = files.groups()
    return np.concatenate([groups["train"], groups["val"]])


def per_fold_bn_features(
    cfg: RunConfig, backbone: Backbone, files: TargetFiles
) -> dict[str, np.ndarray]:
    """k-fold with re-estimated BN statistics: for each outer fold, the statistics come from
    that fold's training part only (never from the images it is scored on), then every image's
    features are extracted with them. Returns ``y`` (pooled labels), ``fold{k}_train`` /
    ``fold{k}_eval`` (indices), ``fold{k}_x`` (float32 [N, D], pooled order), ``bn_images{k}``."""
    t = cfg.transfer

    def compute() -> dict[str, np.ndarray]:
        images, labels = _target_images(cfg, files)
        splits = outer_folds(
            labels, files.num_classes, t.folds, seed=cfg.seed, groups=pooled_groups(files)
        )
        device = default_device()
        gen = torch.Generator().manual_seed(cfg.seed)
        out: dict[str, Any] = {"y": labels}
        for k, (train_idx, eval_idx) in enumerate(splits):
            net = copy.deepcopy(backbone.net)
            order = torch.as_tensor(train_idx)[torch.randperm(len(train_idx), generator=gen)]
            fit = _batches(images[order], labels[order.numpy()], t.batch_size)
            out[f"bn_images{k}"] = np.int64(recalibrate_batchnorm(net, fit, device=device))
            out[f"fold{k}_x"], _ = extract_split_features(
                net, _batches(images, labels, t.batch_size), "all", device, desc=f"fold {k}"
            )
            out[f"fold{k}_train"], out[f"fold{k}_eval"] = train_idx, eval_idx
        return out

    path = _feature_cache_path(cfg, backbone, files, {"per_fold_bn": t.folds})
    return _cached(path, compute)
