"""Transfer of a pretrained network: frozen features for a linear probe, and full fine-tuning.

* :func:`load_backbone` makes the network to transfer: this project's checkpoint or run dir
  (``load_pretrained``), a torchvision/timm-layout state dict on disk (``load_weights``), a
  published WSL/SWSL network by name from its local file (``lightning_modules.published_weights``),
  or a seeded random initialisation (``transfer.pretrained=""``), and says which (``init``).
* :func:`recalibrate_batchnorm` re-estimates batch-norm statistics on target images with
  ``torch.optim.swa_utils.update_bn`` (train mode, momentum None = cumulative average, no grad):
  the honest way to make a random network's features usable, and harmless for a trained one.
* :func:`extract_split_features` runs the frozen network over an FFCV loader and returns the
  pooled features (``last`` = penultimate layer, ``all`` = every stage pooled) with the labels.
* :class:`FineTuner` replaces the head with the target's classes and trains everything with SGD,
  a lower learning rate for the backbone, warm-up + cosine (``lightning_modules.optim``), and
  reports top-1 / top-5 with torchmetrics.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy
from tqdm.auto import tqdm

from datamodules.errors import UserInputError
from lightning_modules.backbones import (
    build_resnext,
    extract_features,
    normalize_images,
)
from lightning_modules.optim import lr_factor, param_groups
from lightning_modules.published_weights import find_file, known_labels, lookup, model_for

if TYPE_CHECKING:
    from experiments.config import ModelConfig

FEATURE_KINDS = ("last", "all")
BN_RECALIBRATION_IMAGES = 2048
FINETUNE_WARMUP_FRACTION = 0.05  # share of fine-tuning steps spent warming up from 0


@dataclass
class Backbone:
    """A network to transfer and where it came from."""

    net: nn.Module
    init: str  # "hashtag" (this project's pretraining) | "weights-file" | "random"
    pretrain_run: str  # the pretraining run's name; "" for random init
    pretrain_axes: dict = field(default_factory=dict)
    identity: str = ""  # names the weights in cache keys (file hash, or checkpoint path+mtime)
    info: dict = field(default_factory=dict)


def _file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def _model_signature(model_cfg: ModelConfig) -> str:
    return (
        f"{model_cfg.name}:{list(model_cfg.layers)}:g{model_cfg.groups}:w{model_cfg.width_per_group}"
        f":s{model_cfg.stem_width}:{'small' if model_cfg.small_input else 'std'}"
    )


def pretrained_label(pretrained: str) -> str:
    """A short name for the weights, readable without loading them: torch hub's name for a
    published network (any of its names), the run's name for a run dir or a checkpoint inside
    ``<run>/checkpoints/``, else the file's stem; "" for random."""
    if not pretrained:
        return ""
    published = lookup(pretrained)
    if published:
        return published.label
    path = Path(pretrained)
    if path.is_dir():
        return path.resolve().name
    if path.parent.name == "checkpoints":
        return path.resolve().parent.parent.name
    return path.stem


def _identity(path: Path, info: dict, model_cfg: ModelConfig) -> str:
    """Cache identity of loaded weights: path + mtime for this project's checkpoints (large,
    rewritten in place only by training), the content hash for a weights file."""
    if info.get("init") == "hashtag":
        ckpt = Path(info.get("checkpoint") or path).resolve()
        return f"ckpt:{ckpt}:{ckpt.stat().st_mtime_ns}"
    return f"sha256:{_file_sha256(path)}:{_model_signature(model_cfg)}"


def load_backbone(pretrained: str, model_cfg: ModelConfig, seed: int) -> Backbone:
    """The network ``transfer.pretrained`` names, built as ``model_cfg`` describes.

    ``""``: a random initialisation seeded with ``seed`` (seeds give different networks).
    A published name (``resnext101_32x8d_wsl``, ...): its local file, built as its own model
    config (``model_cfg``'s architecture is replaced, see ``published_weights.model_for``).
    Otherwise ``load_pretrained`` (a run dir, a ``.ckpt``, or a torchvision/timm-layout
    ``.pth``/``.safetensors`` state dict); a backbone that does not match ``model_cfg`` raises
    :class:`UserInputError`.
    """
    if not pretrained:
        torch.manual_seed(seed)
        net = build_resnext(model_cfg, num_classes=1)
        return Backbone(net, "random", "", {}, f"random:{_model_signature(model_cfg)}:seed{seed}")
    from lightning_modules.checkpoints import load_pretrained

    published = lookup(pretrained)
    if published:
        model_cfg = model_for(pretrained, model_cfg)
        path = find_file(published)
    else:
        path = Path(pretrained)
    if not path.exists():
        raise UserInputError(
            f"transfer.pretrained={pretrained}: no such file or directory (give a run dir, a "
            f".ckpt, a .pth/.safetensors state dict, or a published name: {known_labels()}; "
            "'' for random init)"
        )
    net, info = load_pretrained(path, model_cfg)
    info = dict(info)
    if published:
        info.update(pretrain_run=published.label, published=published.timm_name)
    init = info.get("init") or "weights-file"
    # a weights file is named by its stem (e.g. ig_resnext101_32x8d), so tables can tell them apart
    name = info.get("pretrain_run") or pretrained_label(pretrained)
    axes = dict(info.get("pretrain_axes") or {})
    info.pop("hashtags", None)  # the vocabulary can be long; metrics keep the rest
    return Backbone(net, init, name, axes, _identity(path, info, model_cfg), info)


def _device_default() -> torch.device:
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
    device = device or _device_default()
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
    device = device or _device_default()
    net.to(device).eval()
    feats, labels = [], []
    total = len(loader) if hasattr(loader, "__len__") else None
    for images, y in tqdm(loader, total=total, desc=desc, leave=False):
        x = normalize_images(images.to(device, non_blocking=True))
        feats.append(extract_features(net, x, stages).float().cpu())
        # clone: FFCV reuses its output buffers for later batches (on the CPU .cpu() is a no-op)
        labels.append(y.reshape(-1).long().cpu().clone())
    return torch.cat(feats).numpy(), torch.cat(labels).numpy()


class FineTuner(L.LightningModule):
    """Full fine-tuning: the backbone with a fresh linear head for the target's classes.

    ``lr`` is the head's peak learning rate at this batch size; the backbone gets
    ``lr * backbone_lr_mult``. Warm-up over the first 5% of ``total_steps`` from 0, then cosine
    to 0 (``lightning_modules.optim.lr_factor``). Batches are ``(uint8 images, int labels)``.
    """

    def __init__(
        self,
        net: nn.Module,
        num_classes: int,
        *,
        lr: float,
        backbone_lr_mult: float,
        total_steps: int,
        weight_decay: float = 1e-4,
        momentum: float = 0.9,
        nesterov: bool = True,
        wd_exclude_bn_bias: bool = True,
        channels_last: bool = False,
    ):
        super().__init__()
        if num_classes < 2:
            raise UserInputError(f"fine-tuning needs at least 2 classes, got {num_classes}")
        if lr <= 0 or backbone_lr_mult < 0 or total_steps < 1:
            raise UserInputError(
                "transfer.lr must be > 0, transfer.backbone_lr_mult >= 0 and the schedule "
                f"at least one step (got lr={lr}, mult={backbone_lr_mult}, steps={total_steps})"
            )
        self.save_hyperparameters(ignore=["net"])
        in_features = net.fc.in_features
        net.fc = nn.Linear(in_features, num_classes)
        nn.init.normal_(net.fc.weight, std=0.01)
        nn.init.zeros_(net.fc.bias)
        self.net = net
        self.channels_last = channels_last
        top5 = min(5, num_classes)
        self.val_top1 = MulticlassAccuracy(num_classes, top_k=1, average="micro")
        self.val_top5 = MulticlassAccuracy(num_classes, top_k=top5, average="micro")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(normalize_images(images, channels_last=self.channels_last))

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        images, labels = batch
        loss = F.cross_entropy(self(images), labels.reshape(-1).long())
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/lr", self.optimizers().param_groups[0]["lr"])
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        images, labels = batch
        labels = labels.reshape(-1).long()
        logits = self(images)
        self.log("val/loss", F.cross_entropy(logits, labels), sync_dist=True)
        self.val_top1(logits, labels)
        self.val_top5(logits, labels)
        self.log("val/top1", self.val_top1, prog_bar=True)
        self.log("val/top5", self.val_top5)

    def configure_optimizers(self):
        hp = self.hparams
        head_ids = {id(p) for p in self.net.fc.parameters()}
        backbone = nn.ParameterList([p for p in self.net.parameters() if id(p) not in head_ids])
        groups = []
        for module, lr in ((backbone, hp.lr * hp.backbone_lr_mult), (self.net.fc, hp.lr)):
            for group in param_groups(module, hp.weight_decay, hp.wd_exclude_bn_bias):
                if group["params"]:
                    groups.append({**group, "lr": lr})
        optimizer = torch.optim.SGD(
            groups, lr=hp.lr, momentum=hp.momentum, nesterov=bool(hp.nesterov and hp.momentum)
        )
        warmup = math.ceil(FINETUNE_WARMUP_FRACTION * hp.total_steps)

        def factor(step: int) -> float:
            return lr_factor(
                step,
                total_steps=hp.total_steps,
                warmup_steps=warmup,
                warmup_start=0.0,
                decay="cosine",
            )

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1},
        }


def describe(backbone: Backbone) -> dict[str, Any]:
    """The metrics.json fields that say where a transferred network came from; for a weights
    file also its path and content hash (a published name alone does not say which file)."""
    out = {
        "init": backbone.init,
        "pretrain_run": backbone.pretrain_run,
        "pretrain_axes": backbone.pretrain_axes,
    }
    if backbone.init == "weights-file":
        out["weights_file"] = backbone.info.get("checkpoint", "")
        out["weights_sha256"] = backbone.identity.split(":")[1]
    return out
