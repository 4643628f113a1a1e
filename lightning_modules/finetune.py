"""Full fine-tuning of a transferred network (``transfer.protocol=finetune``).

:class:`FineTuner` replaces the head with the target's classes and trains everything with SGD,
a lower learning rate for the backbone, warm-up + cosine (``lightning_modules.optim``), and
reports top-1 / top-5 with torchmetrics. The run around it (trainer, checkpoints, metrics) is
``experiments/transfer.py``'s.
"""

from __future__ import annotations

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from datamodules.errors import UserInputError
from lightning_modules.backbones import normalize_images
from lightning_modules.optim import lr_factor, param_groups

FINETUNE_WARMUP_FRACTION = 0.05  # share of fine-tuning steps spent warming up from 0


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
