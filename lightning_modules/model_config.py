"""The ``model``, ``optim`` and ``schedule`` sections of a run config: the network, its loss
and how it is optimized.

The closed choices of these sections are defined here, once; the implementing code imports them
(``losses.py``, ``optim.py``). No heavy imports: the config loader reads this on every CLI call.
"""

from __future__ import annotations

from dataclasses import dataclass, field

LOSS_NAMES = ("softmax", "sigmoid")  # multi-label softmax (the paper) | per-hashtag sigmoid
SIGMOID_PRIORS = ("frequency", "uniform", "none")
DECAYS = ("step", "cosine")

# the ModelConfig fields that make the architecture (a checkpoint must match them; a published
# name fixes them); the others (loss, sigmoid_prior, zero_init_residual, weights) do not
ARCH_FIELDS = (
    "name",
    "layers",
    "groups",
    "width_per_group",
    "stem_width",
    "base_planes",
    "small_input",
)

# section -> field -> its closed set of values
CHOICES: dict[str, dict[str, tuple[str, ...]]] = {
    "model": {"loss": LOSS_NAMES, "sigmoid_prior": SIGMOID_PRIORS},
    "schedule": {"decay": DECAYS},
}


@dataclass
class ModelConfig:
    """A ResNeXt in torchvision's layout: ResNet(Bottleneck, layers, groups, width_per_group)."""

    name: str = "rx-tiny"  # shows in run names
    layers: list[int] = field(default_factory=lambda: [1, 1, 1, 1])
    groups: int = 8
    width_per_group: int = 4
    stem_width: int = 32  # torchvision: 64
    base_planes: int = 64  # planes of the first stage (torchvision: 64; stages double it)
    small_input: bool = True  # 3x3 stride-1 stem, no max-pool (32-128 px inputs)
    zero_init_residual: bool = True  # last BN gamma of each residual block starts at 0
    loss: str = "softmax"  # softmax (multi-label softmax, the paper) | sigmoid (ablation)
    # sigmoid loss: classifier bias at logit(p) (lightning_modules/losses.py); p = the hashtag's
    # training-image frequency (frequency) or 1/V (uniform); none = the layer's default init
    sigmoid_prior: str = "frequency"
    weights: str = ""  # optional local torchvision/timm-layout state dict to start from


@dataclass
class OptimConfig:
    base_lr: float = 0.1  # per 256 images; lr = base_lr * global_batch / 256
    reference_batch: int = 256
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 1e-4
    wd_exclude_bn_bias: bool = True
    sigmoid_lr_mult: float = 1.0  # model.loss=sigmoid trains at base_lr x this (README: scan)


@dataclass
class ScheduleConfig:
    """Training length in images seen, not epochs."""

    images_seen: int = 200000  # 0 = use the paper's interpolation heuristic below
    warmup_images: int = 20000
    decay: str = "cosine"  # step | cosine
    decay_steps: int = 3  # step decay: number of equally spaced drops
    decay_factor: float = 0.1
    accumulate: int = 1  # gradient accumulation (global batch = batch * devices * nodes * this)
    # > 0: images per optimizer step whatever the world size; data.loading.batch_size (per
    # device) is then derived as global_batch / (world size * accumulate), which must divide evenly
    global_batch: int = 0
    # heuristic: interpolate images seen on a log scale of dataset size between two extremes
    heuristic_small_dataset: int = 1_200_000
    heuristic_small_epochs: float = 120.0
    heuristic_large_dataset: int = 3_500_000_000
    heuristic_large_epochs: float = 2.0
