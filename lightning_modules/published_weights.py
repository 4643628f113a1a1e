"""Published WSL / SWSL ResNeXt-101 weights by name, read from local files (never downloaded).

``transfer.pretrained=<name>`` names a published network; the name fixes the architecture (the
``configs/model/rx101_32x{C}d.yaml`` it matches) and the file to read:

* Names: torch hub's entry point (``resnext101_32x8d_wsl``; the run names use this one), timm's
  name (``resnext101_32x8d.fb_wsl_ig1b_ft_in1k``) and timm's old name (``ig_resnext101_32x8d``).
  WSL (Mahajan et al. 2018, weakly supervised on Instagram hashtags, fine-tuned on ImageNet-1k):
  32x8d, 32x16d, 32x32d, 32x48d. SWSL (Yalniz et al. 2019, the same architecture pretrained
  semi-weakly on Instagram-1B): 32x4d, 32x8d, 32x16d. (timm's SWAG weights are RegNets and ViTs,
  not ResNeXts, so they have no name here.)
* Folder: ``$WSL_WEIGHTS_DIR`` when set, else ``~/.cache/wsl-scale/weights``.
* File names, the first present wins: ``<timm name>.safetensors`` (timm's Hugging Face
  ``model.safetensors``, renamed), ``<timm name>.pth``, or the original download's name
  (``ig_resnext101_32x8-c38310e5.pth``, as torch hub saves it under
  ``~/.cache/torch/hub/checkpoints/``). A missing file is one :class:`UserInputError` line that
  names the folder and these file names.

timm 1.0.31 lists ``resnext101_32x48d.fb_wsl_ig1b_ft_in1k`` among its pretrained configs but
registers no ``resnext101_32x48d`` model, and its deprecated aliases send every
``ig_resnext101_32x{16,32,48}d`` to the 32x8d weights; the table below maps each width to its own.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from datamodules.errors import UserInputError
from lightning_modules.model_config import ARCH_FIELDS

MODEL_CONFIGS_DIR = Path(__file__).resolve().parents[1] / "configs" / "model"

if TYPE_CHECKING:
    from lightning_modules.model_config import ModelConfig

WEIGHTS_DIR_ENV = "WSL_WEIGHTS_DIR"
DEFAULT_WEIGHTS_DIR = "~/.cache/wsl-scale/weights"


@dataclass(frozen=True)
class PublishedWeights:
    """One published network: its names, its model config and its file names."""

    label: str  # torch hub's name; names the runs
    timm_name: str
    old_timm_name: str
    model_yaml: str  # under configs/model/
    original_file: str  # the file name of the original download (torch hub's cache name)

    @property
    def names(self) -> tuple[str, ...]:
        return (self.label, self.timm_name, self.old_timm_name)

    @property
    def file_names(self) -> tuple[str, ...]:
        """Accepted file names in the weights folder, in the order they are looked for."""
        return (f"{self.timm_name}.safetensors", f"{self.timm_name}.pth", self.original_file)


def _resnext101(kind: str, old_prefix: str, width: int, original: str) -> PublishedWeights:
    """A ResNeXt-101 32xWd of one family: ``kind`` ``wsl`` (weakly supervised, the paper's) or
    ``swsl`` (semi-weakly supervised); ``old_prefix`` starts timm's old model name."""
    return PublishedWeights(
        f"resnext101_32x{width}d_{kind}",
        f"resnext101_32x{width}d.fb_{kind}_ig1b_ft_in1k",
        f"{old_prefix}_resnext101_32x{width}d",
        f"rx101_32x{width}d.yaml",
        original,
    )


# original file names: the download URLs in timm's pretrained configs (timm/models/resnet.py)
PUBLISHED: tuple[PublishedWeights, ...] = (
    _resnext101("wsl", "ig", 8, "ig_resnext101_32x8-c38310e5.pth"),
    _resnext101("wsl", "ig", 16, "ig_resnext101_32x16-c6f796b0.pth"),
    _resnext101("wsl", "ig", 32, "ig_resnext101_32x32-e4b90b00.pth"),
    _resnext101("wsl", "ig", 48, "ig_resnext101_32x48-3e41cc8a.pth"),
    _resnext101("swsl", "swsl", 4, "semi_weakly_supervised_resnext101_32x4-3f87e46b.pth"),
    _resnext101("swsl", "swsl", 8, "semi_weakly_supervised_resnext101_32x8-b4712904.pth"),
    _resnext101("swsl", "swsl", 16, "semi_weakly_supervised_resnext101_32x16-f3559a9c.pth"),
)
_BY_NAME = {name: entry for entry in PUBLISHED for name in entry.names}


def lookup(name: str) -> PublishedWeights | None:
    """The published network ``name`` names (any of its names), or None."""
    return _BY_NAME.get(name.strip())


def weights_dir() -> Path:
    """The folder published weights are read from: ``$WSL_WEIGHTS_DIR`` or the default."""
    return Path(os.environ.get(WEIGHTS_DIR_ENV) or DEFAULT_WEIGHTS_DIR).expanduser()


def find_file(entry: PublishedWeights) -> Path:
    """The local file of ``entry``'s weights; a missing one raises a one-line hint."""
    folder = weights_dir()
    for file_name in entry.file_names:
        if (folder / file_name).is_file():
            return folder / file_name
    where = f"${WEIGHTS_DIR_ENV}={folder}" if os.environ.get(WEIGHTS_DIR_ENV) else str(folder)
    first, second, original = entry.file_names
    raise UserInputError(
        f"transfer.pretrained={entry.label}: no weights file in {where}; put {first} (timm's "
        f"model.safetensors, renamed), {second} or {original} (torch hub's download) there, or "
        f"set {WEIGHTS_DIR_ENV} to the folder that has one (nothing is downloaded)"
    )


def model_config(entry: PublishedWeights, base: ModelConfig) -> ModelConfig:
    """``base`` with the architecture of ``entry``'s ``configs/model`` YAML."""
    from omegaconf import OmegaConf

    from lightning_modules.model_config import ModelConfig

    yaml = OmegaConf.load(MODEL_CONFIGS_DIR / entry.model_yaml)  # a `model:` section, no defaults
    published = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(ModelConfig), yaml.model))
    return dataclasses.replace(base, **{k: getattr(published, k) for k in ARCH_FIELDS})


def model_for(pretrained: str, base: ModelConfig) -> ModelConfig:
    """The model config ``transfer.pretrained`` implies: a published name's, else ``base``."""
    entry = lookup(pretrained) if pretrained else None
    return model_config(entry, base) if entry else base


def known_labels() -> str:
    return ", ".join(entry.label for entry in PUBLISHED)
