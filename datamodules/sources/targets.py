"""Labelled transfer targets: ``load_target(name, ...) -> TargetDataset``.

Every split is a lazy, indexable sequence of ``(rgb uint8 HxWx3, label)`` with ``image_size`` x
``image_size`` images and a ``labels`` attribute (read without decoding). Targets:

* ``imagefolder``: ``root/train/<class>/*`` and ``root/val/<class>/*`` (ImageNet, CUB, Places
  layouts); without ``val/``, a seeded stratified split of ``train/`` (``VAL_SHARE``). Images are
  resized (shorter side) and center-cropped.
* ``fashion_mnist``: Debian's idx files (60k train / 10k val), grayscale to RGB, resized.
* ``openclipart_images``: the held-out images (:func:`openclipart.is_heldout`) of the
  pretraining categories (those in :func:`openclipart.target_categories`): new images of
  classes pretraining saw. Split into train/val per category (seeded).
* ``openclipart_categories``: every image of the folders in ``data.source.holdout_categories``,
  which never enter pretraining: classes pretraining never saw. Split the same way.
* ``synthetic_in`` / ``synthetic_fine`` / ``synthetic_scene``: the synthetic world's tasks, from
  random streams disjoint from the pretraining records.

``max_per_class`` (> 0) caps both splits per class with a seeded choice, for quick runs.
"""

from __future__ import annotations

import functools
import gzip
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from datamodules.errors import UserInputError
from datamodules.sources import openclipart, synthetic
from datamodules.sources.base import TaggedImage, load_rgb

TARGETS = (
    "openclipart_images",
    "openclipart_categories",
    "fashion_mnist",
    "imagefolder",
    "synthetic_in",
    "synthetic_fine",
    "synthetic_scene",
)
VAL_SHARE = 0.2  # imagefolder without val/: share of each class held out for validation
OPENCLIPART_VAL_SHARE = 0.4  # share of each held-out category used for the probe's val split
SYNTHETIC_TRAIN_PER_CLASS = 100
SYNTHETIC_VAL_PER_CLASS = 50
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_ENV = "FASHION_MNIST_DIR"
FASHION_MNIST_CLASSES = (
    "t-shirt/top",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
)


class LabelledImages(Sequence):
    """A lazy split: item ``i`` is ``(load(i), labels[i])``; ``labels`` is readable directly, and
    ``ids`` (file paths, where the split has files) names each item."""

    def __init__(
        self,
        labels: Sequence[int],
        load: Callable[[int], np.ndarray],
        ids: Sequence[str] | None = None,
    ):
        self.labels = np.asarray(labels, dtype=np.int64)
        self.ids = ids
        self._load = load

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self._load(i), int(self.labels[i])


@dataclass(frozen=True)
class TargetDataset:
    name: str
    classes: list[str]
    train: Sequence[tuple[np.ndarray, int]]
    val: Sequence[tuple[np.ndarray, int]]


def _cap(labels: np.ndarray, max_per_class: int, seed: int) -> np.ndarray:
    """Indices keeping at most ``max_per_class`` per class (seeded choice, original order)."""
    if max_per_class <= 0:
        return np.arange(len(labels))
    rng = np.random.default_rng([seed, 7])
    keep = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        keep.append(
            idx if len(idx) <= max_per_class else rng.choice(idx, max_per_class, replace=False)
        )
    return np.sort(np.concatenate(keep))


def _stratified_split(labels: np.ndarray, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded per-class split: ``share`` of each class (at least 1, never all) to val."""
    rng = np.random.default_rng([seed, 11])
    train, val = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_val = min(len(idx) - 1, max(1, int(round(share * len(idx)))))
        val.append(idx[:n_val])
        train.append(idx[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def _file_split(
    paths: list[str], labels: np.ndarray, keep: np.ndarray, size: int
) -> LabelledImages:
    chosen = [paths[i] for i in keep]

    def load(i: int) -> np.ndarray:
        return load_rgb(TaggedImage(chosen[i], (), None, chosen[i]), size)

    return LabelledImages(labels[keep], load, chosen)


# --- imagefolder ---------------------------------------------------------------------------------


def _scan_split(folder: Path) -> dict[str, list[str]]:
    """``{class: sorted image paths}`` of one split folder."""
    out = {}
    for d in sorted(p for p in folder.iterdir() if p.is_dir()):
        out[d.name] = sorted(
            str(f) for f in d.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES
        )
    return out


def _imagefolder(root: str, image_size: int, seed: int, max_per_class: int) -> TargetDataset:
    if not root:
        raise UserInputError(
            "target imagefolder needs transfer.target_root=<folder with train/ and val/>"
        )
    base = Path(root).expanduser()
    if not (base / "train").is_dir():
        raise UserInputError(
            f"imagefolder {base}: missing split folder train/ (expected {base}/train/<class>/*.jpg "
            "and optionally val/<class>/*.jpg)"
        )
    train = _scan_split(base / "train")
    empty = [c for c, files in train.items() if not files]
    if empty:
        raise UserInputError(
            f"imagefolder {base}/train: class folders without images: {', '.join(empty)}"
        )
    classes = sorted(train)
    if len(classes) < 2:
        raise UserInputError(
            f"imagefolder {base}/train holds {len(classes)} class folder(s) ({', '.join(classes)}); "
            "a classification target needs at least 2"
        )
    index = {c: k for k, c in enumerate(classes)}
    tr_paths = [p for c in classes for p in train[c]]
    tr_labels = np.array([index[c] for c in classes for _ in train[c]], dtype=np.int64)
    if (base / "val").is_dir():
        val = _scan_split(base / "val")
        unknown = sorted(set(val) - set(classes))
        if unknown:
            raise UserInputError(
                f"imagefolder {base}/val has classes not in train/: {', '.join(unknown)}"
            )
        va_paths = [p for c in classes for p in val.get(c, [])]
        va_labels = np.array([index[c] for c in classes for _ in val.get(c, [])], dtype=np.int64)
        if not va_paths:
            raise UserInputError(f"imagefolder {base}/val holds no images")
        tr_keep, va_keep = np.arange(len(tr_paths)), np.arange(len(va_paths))
    else:
        va_paths, va_labels = tr_paths, tr_labels
        tr_keep, va_keep = _stratified_split(tr_labels, VAL_SHARE, seed)
    tr_keep = tr_keep[_cap(tr_labels[tr_keep], max_per_class, seed)]
    va_keep = va_keep[_cap(va_labels[va_keep], max_per_class, seed)]
    return TargetDataset(
        "imagefolder",
        classes,
        _file_split(tr_paths, tr_labels, tr_keep, image_size),
        _file_split(va_paths, va_labels, va_keep, image_size),
    )


# --- Fashion-MNIST -------------------------------------------------------------------------------


def _read_idx(path: Path) -> np.ndarray:
    """An idx file (gzip): big-endian magic (dtype code, ndim), dims, then uint8 data."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    if data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise UserInputError(f"{path}: not a uint8 idx file")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * k : 8 + 4 * k], "big") for k in range(ndim)]
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(dims)):
        raise UserInputError(
            f"{path}: truncated idx file ({arr.size} of {int(np.prod(dims))} bytes)"
        )
    return arr.reshape(dims)


@functools.lru_cache(maxsize=2)
def _fashion_mnist_arrays(folder: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    base = Path(folder)
    out = {}
    for split, prefix in (("train", "train"), ("val", "t10k")):
        img_file = base / f"{prefix}-images-idx3-ubyte.gz"
        lbl_file = base / f"{prefix}-labels-idx1-ubyte.gz"
        for f in (img_file, lbl_file):
            if not f.is_file():
                raise UserInputError(
                    f"Fashion-MNIST file {f} not found: install the Debian package "
                    f"dataset-fashion-mnist or set ${FASHION_MNIST_ENV} to a folder with the idx .gz files"
                )
        out[split] = (_read_idx(img_file), _read_idx(lbl_file).astype(np.int64))
    return out


def _gray_split(
    images: np.ndarray, labels: np.ndarray, keep: np.ndarray, size: int
) -> LabelledImages:
    def load(i: int) -> np.ndarray:
        img = images[keep[i]]
        if img.shape[0] != size:
            img = cv2.resize(img, (size, size), interpolation=cv2.INTER_LINEAR)
        return np.repeat(img[:, :, None], 3, axis=2)

    return LabelledImages(labels[keep], load)


def _fashion_mnist(root: str, image_size: int, seed: int, max_per_class: int) -> TargetDataset:
    folder = root or os.environ.get(FASHION_MNIST_ENV) or FASHION_MNIST_DIR
    arrays = _fashion_mnist_arrays(str(Path(folder).expanduser()))
    splits = []
    for split in ("train", "val"):
        images, labels = arrays[split]
        splits.append(_gray_split(images, labels, _cap(labels, max_per_class, seed), image_size))
    return TargetDataset("fashion_mnist", list(FASHION_MNIST_CLASSES), *splits)


# --- OpenClipart: held-out images, held-out categories ---------------------------------------


RENAMED_TARGETS = {
    "openclipart": "target 'openclipart' is now two targets, named for what they are: "
    "openclipart_images (held-out images of the pretraining categories) and "
    "openclipart_categories (whole folders never in pretraining: data.source.holdout_categories)"
}


def _openclipart(
    name: str,
    image_size: int,
    seed: int,
    cache_dir: str,
    holdout_fraction: float,
    holdout_categories: Sequence[str],
    max_per_class: int,
) -> TargetDataset:
    if name == "openclipart_categories":
        records = openclipart.load_records(
            cache_dir, image_size, holdout_categories=holdout_categories, categories_only=True
        )
    else:
        records = openclipart.load_records(
            cache_dir,
            image_size,
            heldout=True,
            holdout_fraction=holdout_fraction,
            holdout_categories=holdout_categories,
        )
    classes = openclipart.target_categories(records)
    if len(classes) < 2:
        raise UserInputError(
            f"target {name}: only {len(classes)} category has >= "
            f"{openclipart.MIN_HELDOUT_PER_CATEGORY} images at "
            f"data.source.holdout_fraction={holdout_fraction}, "
            f"data.source.holdout_categories={list(holdout_categories)}; hold out more"
        )
    index = {c: k for k, c in enumerate(classes)}
    kept = [r for r in records if r.category in index]
    paths = [r.path for r in kept]
    labels = np.array([index[r.category] for r in kept], dtype=np.int64)
    tr, va = _stratified_split(labels, OPENCLIPART_VAL_SHARE, seed)
    tr, va = tr[_cap(labels[tr], max_per_class, seed)], va[_cap(labels[va], max_per_class, seed)]
    return TargetDataset(
        name,
        classes,
        _file_split(paths, labels, tr, image_size),
        _file_split(paths, labels, va, image_size),
    )


# --- synthetic tasks -----------------------------------------------------------------------------


def _synthetic(
    name: str, image_size: int, seed: int, max_per_class: int, num_concepts: int, zipf: float
) -> TargetDataset:
    world = synthetic.get_world(num_concepts, zipf, image_size)
    classes = world.target_classes(name)
    splits = []
    for split, per_class in ((0, SYNTHETIC_TRAIN_PER_CLASS), (1, SYNTHETIC_VAL_PER_CLASS)):
        if max_per_class > 0:
            per_class = min(per_class, max_per_class)
        n = per_class * len(classes)
        labels = np.arange(n) % len(classes)  # world.target cycles classes with the index

        def load(i: int, split=split) -> np.ndarray:
            return world.target(name, split, seed, i)[0]

        splits.append(LabelledImages(labels, load))
    return TargetDataset(name, classes, *splits)


def load_target(
    name: str,
    *,
    root: str = "",
    image_size: int,
    seed: int,
    cache_dir: str,
    holdout_fraction: float = 0.2,
    holdout_categories: Sequence[str] = (),
    max_per_class: int = 0,
    synthetic_concepts: int = 300,
    zipf_exponent: float = 1.0,
) -> TargetDataset:
    """A labelled target by name (see the module docstring). The keyword defaults match
    ``DataConfig``'s; pass ``data.source.holdout_fraction`` / ``data.source.synthetic_concepts``
    when changed, so the target matches the pretraining corpus."""
    if image_size < 8:
        raise UserInputError(f"target image size {image_size} is too small (use >= 8)")
    if name == "imagefolder":
        ds = _imagefolder(root, image_size, seed, max_per_class)
    elif name == "fashion_mnist":
        ds = _fashion_mnist(root, image_size, seed, max_per_class)
    elif name in ("openclipart_images", "openclipart_categories"):
        ds = _openclipart(
            name, image_size, seed, cache_dir, holdout_fraction, holdout_categories, max_per_class
        )
    elif name in RENAMED_TARGETS:
        raise UserInputError(RENAMED_TARGETS[name])
    elif name in synthetic.TARGET_TASKS:
        ds = _synthetic(name, image_size, seed, max_per_class, synthetic_concepts, zipf_exponent)
    else:
        raise UserInputError(f"unknown target '{name}'; choose one of {', '.join(TARGETS)}")
    if len(ds.classes) < 2:
        raise UserInputError(f"target '{name}' has a single class; a classifier needs at least 2")
    return ds
