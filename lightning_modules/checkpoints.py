"""Load a pretrained backbone for transfer: a pretraining .ckpt, a run dir, or a state dict.

``load_pretrained(path, model_cfg=None) -> (net, info)`` returns the full network (backbone and
hashtag head, torchvision layout) and ``info = {"pretrain_run", "pretrain_axes", "init",
"num_classes", "hashtags", "checkpoint", "resolution", "loss"}``; ``init`` is ``"hashtag"`` for this project's checkpoints and
``"weights-file"`` for a plain torchvision/timm-layout state dict (which needs ``model_cfg``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from omegaconf import OmegaConf

from datamodules.axes import axes_from_config
from datamodules.data_legacy import upgrade_config, upgrade_data
from datamodules.errors import UserInputError
from lightning_modules.backbones import build_resnext, load_state_dict_file, load_weights

if TYPE_CHECKING:
    from lightning_modules.model_config import ModelConfig

STRUCTURE = ("layers", "groups", "width_per_group", "stem_width", "small_input")


HELDOUT_KEYS = ("source", "holdout_fraction", "holdout_categories")


def heldout_split(data: dict) -> dict:
    """What a pretraining corpus held out for transfer (its source, the id-hash fraction and
    the whole folders), from its data config (flat or sectioned); keys a run may predate read
    as the defaults."""
    source = upgrade_data(data)["source"]
    return {
        "source": source["name"],
        "holdout_fraction": float(source.get("holdout_fraction", 0.2)),
        "holdout_categories": sorted(source.get("holdout_categories") or []),
    }


def _read_metrics(run_dir: Path) -> dict | None:
    path = run_dir / "metrics.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None


def _check_structure(saved: dict, model_cfg: Any, where: Path) -> None:
    if model_cfg is None:
        return
    diffs = []
    for key in STRUCTURE:
        want = getattr(model_cfg, key)
        want = list(want) if key == "layers" else want
        have = list(saved[key]) if key == "layers" else saved[key]
        if want != have:
            diffs.append(f"model.{key}: checkpoint {have} vs config {want}")
    if diffs:
        raise UserInputError(
            f"{where}: the pretrained backbone differs from the configured one ({'; '.join(diffs)});"
            " drop the model overrides or pick a matching checkpoint"
        )


def _load_lightning_checkpoint(path: Path, model_cfg: Any) -> tuple[torch.nn.Module, dict]:
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UserInputError(f"{path}: cannot read the checkpoint: {exc}") from None
    hparams = ckpt.get("hyper_parameters") or {}
    config = hparams.get("config")
    if not config or "state_dict" not in ckpt:
        raise UserInputError(f"{path}: not a HashtagPretrainer checkpoint (no config in hparams)")
    config = upgrade_config(config)  # a checkpoint written before the data sections is flat
    _check_structure(config["model"], model_cfg, path)
    vocab_size = int(hparams["vocab_size"])
    net = build_resnext(OmegaConf.create(config["model"]), vocab_size)
    state = {k[len("net.") :]: v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
    load_weights(net, state)
    run_dir = path.parent.parent if path.parent.name == "checkpoints" else path.parent
    metrics = _read_metrics(run_dir)
    if metrics and metrics.get("kind") == "pretrain":
        name, axes = metrics["name"], metrics["axes"]
    else:
        name = config.get("name") or run_dir.name
        axes = axes_from_config(config, vocab_size, int(hparams.get("num_train") or 0))
    info = {
        "pretrain_run": name,
        "pretrain_axes": axes,
        "init": "hashtag",
        "num_classes": vocab_size,
        "hashtags": list(hparams.get("hashtags") or []),
        "checkpoint": str(path),
        "resolution": int(config["data"]["loading"]["resolution"]),
        "loss": config["model"]["loss"],
        "heldout": heldout_split(config["data"]),
    }
    return net, info


def load_pretrained(
    path: str | Path, model_cfg: ModelConfig | None = None
) -> tuple[torch.nn.Module, dict]:
    """The pretrained network and where it came from (see the module docstring)."""
    path = Path(path)
    if path.is_dir():
        ckpt = path / "checkpoints" / "last.ckpt"
        if not ckpt.is_file():
            raise UserInputError(f"{path}: a run dir needs checkpoints/last.ckpt; none found")
        return _load_lightning_checkpoint(ckpt, model_cfg)
    if not path.is_file():
        raise UserInputError(f"pretrained weights not found: {path}")
    if path.suffix == ".ckpt":
        return _load_lightning_checkpoint(path, model_cfg)
    if model_cfg is None:
        raise UserInputError(
            f"{path}: a plain state dict needs the model config (model.layers, groups, ...)"
        )
    state = load_state_dict_file(path)
    head = state.get("fc.weight")
    num_classes = int(head.shape[0]) if head is not None else 1000
    net = build_resnext(model_cfg, num_classes)
    load_weights(net, state)
    info = {
        "pretrain_run": "",
        "pretrain_axes": {},
        "init": "weights-file",
        "num_classes": num_classes,
        "hashtags": [],
        "checkpoint": str(path),
        "resolution": 224,
        "loss": "softmax",
    }
    return net, info
