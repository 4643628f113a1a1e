"""ResNeXt backbones in torchvision's layout, feature extraction and input normalisation.

The paper's models are ResNeXt-101 32xCd, which torchvision builds as
``ResNet(Bottleneck, [3, 4, 23, 3], groups=32, width_per_group=C)``. :class:`ResNeXt` is that
class plus two knobs for small CPU variants: a narrower stem (``stem_width`` channels out of
``conv1`` instead of 64) and a 3x3 stride-1 stem without max-pool for 32-128 px inputs. The
attribute names (``conv1``, ``bn1``, ``layer1``..``layer4``, ``fc``) stay torchvision's, so state
dicts load into torchvision / timm models and the published WSL weights load into ours, from a
torch file or a ``.safetensors`` file (:func:`load_state_dict_file`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

from datamodules.errors import UserInputError

if TYPE_CHECKING:
    from lightning_modules.model_config import ModelConfig

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
STAGES = ("layer1", "layer2", "layer3", "layer4")


class ResNeXt(ResNet):
    """torchvision's ResNet with a configurable stem width and an optional small-input stem.

    ``stem_width=64, small_input=False`` builds exactly torchvision's network.
    """

    def __init__(
        self,
        layers: Sequence[int],
        *,
        groups: int,
        width_per_group: int,
        num_classes: int,
        stem_width: int = 64,
        base_planes: int = 64,
        small_input: bool = False,
        zero_init_residual: bool = True,
    ):
        # ResNet.__init__ builds layer1 from ``self.inplanes``; _make_layer below swaps in the
        # stem width just before layer1 is built, and the stem is rebuilt to match afterwards.
        self._stem_width = stem_width
        self._plane_scale = base_planes / 64  # torchvision's stages have 64..512 planes
        self._layers_built = 0
        super().__init__(
            Bottleneck,
            list(layers),
            num_classes=num_classes,
            zero_init_residual=zero_init_residual,
            groups=groups,
            width_per_group=width_per_group,
        )
        if stem_width != 64 or small_input:
            kernel, stride, pad = (3, 1, 1) if small_input else (7, 2, 3)
            self.conv1 = nn.Conv2d(3, stem_width, kernel, stride, pad, bias=False)
            self.bn1 = nn.BatchNorm2d(stem_width)
            nn.init.kaiming_normal_(self.conv1.weight, mode="fan_out", nonlinearity="relu")
            nn.init.ones_(self.bn1.weight)
            nn.init.zeros_(self.bn1.bias)
        if small_input:
            self.maxpool = nn.Identity()  # no parameters: the state-dict layout is unchanged
        if base_planes != 64:
            self.fc = nn.Linear(self.inplanes, num_classes)

    def _make_layer(self, block, planes, blocks, stride=1, dilate=False):  # noqa: D401
        if self._layers_built == 0:
            self.inplanes = self._stem_width
        self._layers_built += 1
        planes = max(1, round(planes * self._plane_scale))
        return super()._make_layer(block, planes, blocks, stride, dilate)


def build_resnext(model_cfg: ModelConfig, num_classes: int) -> ResNeXt:
    """The backbone + linear head that ``model_cfg`` describes (torchvision layout)."""
    if len(model_cfg.layers) != 4 or any(int(n) < 1 for n in model_cfg.layers):
        raise UserInputError(
            f"model.layers must be 4 positive block counts (e.g. [3, 4, 23, 3]), got {list(model_cfg.layers)}"
        )
    if (
        min(
            model_cfg.groups, model_cfg.width_per_group, model_cfg.stem_width, model_cfg.base_planes
        )
        < 1
    ):
        raise UserInputError(
            "model.groups, model.width_per_group, model.stem_width and model.base_planes must be >= 1"
        )
    if num_classes < 1:
        raise UserInputError(f"the head needs at least one class, got num_classes={num_classes}")
    return ResNeXt(
        [int(n) for n in model_cfg.layers],
        groups=int(model_cfg.groups),
        width_per_group=int(model_cfg.width_per_group),
        num_classes=int(num_classes),
        stem_width=int(model_cfg.stem_width),
        base_planes=int(model_cfg.base_planes),
        small_input=bool(model_cfg.small_input),
        zero_init_residual=bool(model_cfg.zero_init_residual),
    )


def resnext101_32xd(width_per_group: int, num_classes: int = 1000) -> ResNeXt:
    """The paper's ResNeXt-101 32xCd (torchvision's resnext101_32x{C}d layout)."""
    return ResNeXt(
        [3, 4, 23, 3], groups=32, width_per_group=width_per_group, num_classes=num_classes
    )


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


# --------------------------------------------------------------------------------------------
# weights


def _unwrap_state_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    """The tensor mapping inside a saved object: a plain state dict or one under a common key."""
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    for key in ("state_dict", "model", "model_state", "net"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UserInputError(
            f"{path}: not a state dict of tensors "
            "(expected a torchvision/timm-layout .pth or .safetensors)"
        )
    out = {}
    for key, value in obj.items():
        for prefix in ("module.", "model.", "net.", "_orig_mod."):
            if key.startswith(prefix):
                key = key[len(prefix) :]
        out[key] = value
    return out


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict in a ``.safetensors`` file (by its suffix) or a torch file (``.pth``,
    ``.pt``, ``.bin``: read with ``weights_only=True``), on the CPU, prefixes stripped."""
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            obj = load_file(path, device="cpu")
        except (SafetensorError, OSError) as exc:
            raise UserInputError(f"{path}: cannot read as a safetensors file: {exc}") from None
        return _unwrap_state_dict(obj, path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UserInputError(f"{path}: cannot read as a torch state dict: {exc}") from None
    return _unwrap_state_dict(obj, path)


def load_weights(net: nn.Module, path: str | Path | dict, *, head: str = "fc") -> dict[str, Any]:
    """Load a torchvision/timm-layout state dict (a dict, or a ``.pth``/``.safetensors`` file)
    into ``net``; return what was loaded.

    The head (``fc.*``) is skipped when its shape differs (e.g. 1000 ImageNet classes vs a
    hashtag vocabulary) and then keeps ``net``'s initialisation. Any other missing, unexpected
    or mis-shaped key raises one :class:`UserInputError` that lists them all.
    """
    source = str(path) if not isinstance(path, dict) else "<state dict>"
    state = dict(path) if isinstance(path, dict) else load_state_dict_file(path)
    own = net.state_dict()
    skipped_head = []
    for key in [k for k in state if k.startswith(head + ".")]:
        if key in own and own[key].shape != state[key].shape:
            skipped_head.append(key)
            del state[key]
    missing = [k for k in own if k not in state and k not in skipped_head]
    # old checkpoints have no BN step counters; they carry no learned state
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    mis_shaped = [
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in state
        if k in own and state[k].shape != own[k].shape
    ]
    if missing or unexpected or mis_shaped:
        parts = []
        if missing:
            parts.append(f"missing keys ({len(missing)}): {', '.join(missing[:20])}")
        if unexpected:
            parts.append(f"unexpected keys ({len(unexpected)}): {', '.join(unexpected[:20])}")
        if mis_shaped:
            parts.append(f"shape mismatches ({len(mis_shaped)}): {', '.join(mis_shaped[:20])}")
        raise UserInputError(
            f"{source} does not match the backbone (check model.layers/groups/width_per_group/"
            f"stem_width/small_input): " + "; ".join(parts)
        )
    net.load_state_dict(state, strict=False)
    return {"source": source, "loaded": len(state), "head_skipped": bool(skipped_head)}


# --------------------------------------------------------------------------------------------
# features


def _stage_channels(stage: nn.Sequential) -> int:
    last = stage[-1]
    if isinstance(last, Bottleneck):
        return last.bn3.num_features
    if isinstance(last, BasicBlock):
        return last.bn2.num_features
    raise TypeError(f"unknown residual block type {type(last).__name__}")


def feature_dim(net: ResNet, stages: str = "last") -> int:
    """Width of :func:`extract_features`' output."""
    if stages == "last":
        return net.fc.in_features
    if stages == "all":
        return sum(_stage_channels(getattr(net, s)) for s in STAGES)
    raise UserInputError(f"features must be 'last' or 'all', got '{stages}'")


def extract_features(net: ResNet, x: torch.Tensor, stages: str = "last") -> torch.Tensor:
    """Globally average-pooled features [B, D] of normalised images ``x`` (float NCHW).

    ``last``: the penultimate layer (what the head sees). ``all``: every stage's pooled output
    concatenated (layer1..layer4), for probing how transferable earlier stages are.
    """
    if stages not in ("last", "all"):
        raise UserInputError(f"features must be 'last' or 'all', got '{stages}'")
    x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
    pooled = []
    for name in STAGES:
        x = getattr(net, name)(x)
        if stages == "all":
            pooled.append(torch.flatten(net.avgpool(x), 1))
    if stages == "last":
        return torch.flatten(net.avgpool(x), 1)
    return torch.cat(pooled, dim=1)


def normalize_images(images: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
    """uint8 NCHW images -> float32 with ImageNet mean/std (on the images' device)."""
    if images.dtype != torch.uint8:
        raise TypeError(f"normalize_images expects uint8 images, got {images.dtype}")
    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(IMAGENET_STD, device=images.device).view(1, 3, 1, 1) * 255.0
    out = (images.float() - mean) / std
    if channels_last:
        out = out.contiguous(memory_format=torch.channels_last)
    return out
