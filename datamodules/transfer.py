"""The target datamodule: FFCV loaders over a transfer target's written files.

Targets are rendered at the probe resolution already (square, shorter side resized, center
crop; see :mod:`datamodules.target_files`), so evaluation decodes with a center crop of ratio 1
(the whole stored image): no resampling twice and no augmentation for feature extraction and
evaluation. Fine-tuning trains with FFCV's random resized crop + flip.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch

from datamodules.errors import UserInputError
from datamodules.ffcv_read import int_pipeline, train_image_pipeline, val_image_pipeline
from datamodules.target_files import (
    TargetFiles,
    TargetSpec,
    check_target,
    ensure_target_files,
)

EVAL_CROP_RATIO = 1.0  # targets are stored at the probe resolution: the crop is the whole image

__all__ = [
    "EVAL_CROP_RATIO",
    "TargetDataModule",
    "TargetFiles",
    "TargetSpec",
    "check_target",
    "ensure_target_files",
]


class TargetDataModule(L.LightningDataModule):
    """FFCV loaders over a written target: batches ``(images uint8 [B,3,R,R], labels int64 [B])``.

    ``train_dataloader`` augments (random resized crop + flip) for fine-tuning;
    ``val_dataloader`` and :meth:`eval_loader` decode the stored image as is, in file order.
    """

    def __init__(
        self,
        files: TargetFiles,
        *,
        resolution: int,
        batch_size: int,
        num_workers: int = 2,
        seed: int = 0,
    ):
        super().__init__()
        if batch_size < 1:
            raise UserInputError(f"transfer.batch_size={batch_size} must be >= 1")
        self.files = files
        self.resolution = int(resolution)
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.seed = int(seed)

    @property
    def num_classes(self) -> int:
        return self.files.num_classes

    def _device(self) -> torch.device | None:
        trainer = getattr(self, "trainer", None)
        return trainer.strategy.root_device if trainer is not None else None

    def _distributed(self) -> bool:
        trainer = getattr(self, "trainer", None)
        return trainer is not None and trainer.world_size > 1

    def _loader(self, path: Path, *, train: bool, device=None, order=None, drop_last=False):
        from ffcv.loader import Loader, OrderOption

        image = (
            train_image_pipeline(self.resolution, device)
            if train
            else val_image_pipeline(self.resolution, device, ratio=EVAL_CROP_RATIO)
        )
        if order is None:
            order = OrderOption.RANDOM if train else OrderOption.SEQUENTIAL
        return Loader(
            str(path),
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            order=order,
            distributed=self._distributed(),
            seed=self.seed,
            drop_last=drop_last,
            pipelines={"image": image, "label": int_pipeline(device)},
        )

    def train_dataloader(self):
        drop = self.files.num_train >= 2 * self.batch_size  # a tiny target keeps its tail
        return self._loader(self.files.train, train=True, device=self._device(), drop_last=drop)

    def val_dataloader(self):
        return self._loader(self.files.val, train=False, device=self._device())

    def eval_loader(self, split: str, device=None, shuffle: bool = False):
        """Un-augmented loader over ``split`` ('train' | 'val') for feature extraction; labels
        come with every batch, so a shuffled order (``shuffle``) is as usable as file order."""
        from ffcv.loader import OrderOption

        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        path = self.files.train if split == "train" else self.files.val
        order = OrderOption.RANDOM if shuffle else OrderOption.SEQUENTIAL
        return self._loader(path, train=False, device=device, order=order)
