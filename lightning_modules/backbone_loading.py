"""The network to transfer: which weights ``transfer.pretrained`` names, loaded and described.

* :func:`load_backbone` makes the network to transfer: this project's checkpoint or run dir
  (``load_pretrained``), a torchvision/timm-layout state dict on disk (``load_weights``), a
  published WSL/SWSL network by name from its local file (``lightning_modules.published_weights``),
  or a seeded random initialisation (``transfer.pretrained=""``), and says which (``init``).
* :func:`pretrained_label` names the weights without loading them (run names);
  :func:`describe` gives the metrics.json fields that say where the network came from.

What is done with the network next: :mod:`lightning_modules.features` (frozen features for the
linear probe, :mod:`lightning_modules.linear_probe`) or :mod:`lightning_modules.finetune`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from datamodules.errors import UserInputError
from lightning_modules.backbones import build_resnext
from lightning_modules.published_weights import find_file, known_labels, lookup, model_for

if TYPE_CHECKING:
    from lightning_modules.model_config import ModelConfig


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
