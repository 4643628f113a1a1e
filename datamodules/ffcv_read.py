"""Reading FFCV .beton files (written by :mod:`datamodules.ffcv_store`): the Loader pipelines
per field, and the field names and label rows read straight from the file without a Loader.

Pipelines: uint8 NCHW images leave the loader (normalisation happens on the accelerator, in
the LightningModule); ``ToDevice`` only when a CUDA device is given.
Training crops and flips are seeded by an epoch key (:mod:`datamodules.ffcv_augment`).
Building any pipeline installs :mod:`datamodules.ffcv_patch` (FFCV's memory managers otherwise
mutate numba's shared array types, which breaks numba's dicts).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from datamodules.errors import UserInputError

if TYPE_CHECKING:
    from datamodules.ffcv_augment import EpochKey

# Validation center crop: crop side / shorter image side (the usual 224/256).
DEFAULT_CENTER_CROP_RATIO = 224 / 256


def _gpu(device: torch.device | str | None) -> torch.device | None:
    if device is None:
        return None
    device = torch.device(device)
    return device if device.type == "cuda" else None


def _tensor_tail(device: torch.device | str | None) -> list:
    """The end of every pipeline built here (so the place that installs the FFCV fix of
    :mod:`datamodules.ffcv_patch` before any Loader of the project compiles)."""
    from ffcv.transforms import ToDevice, ToTensor

    from datamodules import ffcv_patch

    ffcv_patch.apply()

    gpu = _gpu(device)
    return [ToTensor()] + ([ToDevice(gpu, non_blocking=True)] if gpu is not None else [])


def train_image_pipeline(
    resolution: int,
    device: torch.device | str | None = None,
    min_scale: float = 0.08,
    key: EpochKey | None = None,
    first_sample_id: int = 0,
) -> list:
    """Random resized crop (scale min_scale-1, ratio 3/4-4/3) + horizontal flip -> uint8 NCHW.

    ``key`` (a :class:`datamodules.ffcv_augment.EpochKey`): crop and flip are a hash of (its seed
    and epoch, sample id = ``first_sample_id`` + row); None: FFCV's unseeded draws."""
    from ffcv.fields.rgb_image import RandomResizedCropRGBImageDecoder
    from ffcv.transforms import ToTorchImage

    from datamodules.ffcv_augment import (
        DEFAULT_RATIO,
        InPlaceRandomHorizontalFlip,
        SeededRandomResizedCropRGBImageDecoder,
        check_crop,
    )

    size, scale = (int(resolution), int(resolution)), (float(min_scale), 1.0)
    check_crop(scale, DEFAULT_RATIO)
    if key is None:
        decoder = RandomResizedCropRGBImageDecoder(size, scale=scale, ratio=DEFAULT_RATIO)
    else:
        decoder = SeededRandomResizedCropRGBImageDecoder(
            size, key, scale=scale, ratio=DEFAULT_RATIO, first_sample_id=first_sample_id
        )
    return [
        decoder,
        InPlaceRandomHorizontalFlip(key=key, first_sample_id=first_sample_id),
        *_tensor_tail(device),
        ToTorchImage(),
    ]


def val_image_pipeline(
    resolution: int,
    device: torch.device | str | None = None,
    ratio: float = DEFAULT_CENTER_CROP_RATIO,
) -> list:
    """Deterministic center crop (side = ratio x shorter side) resized -> uint8 NCHW."""
    from ffcv.fields.rgb_image import CenterCropRGBImageDecoder
    from ffcv.transforms import ToTorchImage

    return [
        CenterCropRGBImageDecoder((int(resolution), int(resolution)), ratio),
        *_tensor_tail(device),
        ToTorchImage(),
    ]


def labels_pipeline(device: torch.device | str | None = None) -> list:
    """Padded int32 label ids [B, max_labels]."""
    from ffcv.fields.decoders import NDArrayDecoder

    return [NDArrayDecoder(), *_tensor_tail(device)]


def int_pipeline(device: torch.device | str | None = None) -> list:
    """A scalar IntField as int64 [B] (sample ids, class labels)."""
    from ffcv.fields.decoders import IntDecoder
    from ffcv.transforms import Squeeze

    return [IntDecoder(), *_tensor_tail(device), Squeeze(1)]


def read_field_names(path: str | Path) -> list[str]:
    """The field names stored in a .beton (to check a file is the layout expected)."""
    from ffcv.reader import Reader

    return list(Reader(str(path)).field_names)


def read_labels(path: str | Path, chunk: int = 1 << 20) -> np.ndarray:
    """All padded label rows of a hashtag .beton as int32 [N, max_labels], without decoding
    images and without compiling a Loader: FFCV stores each NDArrayField value at the absolute
    file offset kept in the sample's metadata, so this is a memory-mapped gather."""
    return np.concatenate(list(iter_label_chunks(path, chunk)))


def iter_label_chunks(path: str | Path, chunk: int = 1 << 20):
    """Yield the padded label rows of a hashtag .beton in order, ``chunk`` samples at a time
    (int32 [<=chunk, max_labels]); memory stays O(chunk) for any file size."""
    from ffcv.reader import Reader

    reader = Reader(str(path))
    if "labels" not in reader.handlers:
        raise UserInputError(f"{path} has no `labels` field (fields: {reader.field_names})")
    field = reader.handlers["labels"]
    width = int(np.prod(field.shape))
    nbytes = width * np.dtype(field.dtype).itemsize
    # metadata columns are unnamed ("f0", "f1", ...) in field order
    ptrs = reader.metadata[f"f{reader.field_names.index('labels')}"]
    data = np.memmap(str(path), dtype=np.uint8, mode="r")
    offsets = np.arange(nbytes, dtype=np.uint64)
    for start in range(0, len(ptrs), chunk):
        rows = ptrs[start : start + chunk].astype(np.uint64)
        raw = data[rows[:, None] + offsets[None, :]]
        yield raw.view(field.dtype).reshape(len(rows), width).astype(np.int32, copy=False)
