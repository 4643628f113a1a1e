"""The ``transfer`` section of a run config: the target task, the protocol (linear probe or
fine-tuning) and their settings.

It sits beside the target files it describes (``target_files.py``, ``transfer.py``) because the
data side is its lowest reader; the probe and fine-tuning code in ``lightning_modules`` imports
it from here. Its closed choices are defined here, once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

PROTOCOLS = ("linear", "finetune")  # frozen features + linear probe | fine-tune every layer
FEATURE_KINDS = ("last", "all")  # the last stage pooled | every stage pooled, concatenated

CHOICES: dict[str, tuple[str, ...]] = {"protocol": PROTOCOLS, "features": FEATURE_KINDS}


@dataclass
class TransferConfig:
    pretrained: str = ""  # checkpoint, run dir, or torchvision/timm-layout state dict; "" = random
    protocol: str = "linear"  # linear (frozen features) | finetune
    # openclipart_images | openclipart_categories | fashion_mnist | imagefolder | synthetic_in | ...
    target: str = "openclipart_images"
    target_root: str = ""  # imagefolder: root with train/ and val/
    resolution: int = 64
    max_per_class: int = 0  # cap train images per class (0 = all)
    # linear probe
    features: str = "last"  # last | all (pool every stage)
    bn_recalibrate: bool = False  # re-estimate batch-norm statistics on target images
    l2_grid: list[float] = field(default_factory=lambda: [1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0])
    folds: int = 0  # >1: k-fold on train+val, report mean and spread
    # fine-tuning
    lr: float = 0.01
    backbone_lr_mult: float = 0.1
    images_seen: int = 50000
    batch_size: int = 64
