"""Transfer targets on disk: written once as FFCV files, reused by every transfer run.

A target (``load_target(name, ...)``: OpenClipart's held-out categories, Fashion-MNIST, an image
folder, a synthetic-world task) is written once per (target, resolution, ...) to
``<data.cache_dir>/targets/<target>-r<res>-<key>/`` as ``train.beton`` + ``val.beton`` (fields
``image`` RGBImageField, ``label`` IntField) and a ``meta.json`` with the class names and
counts; later runs (every seed, every pretrained network) reuse the files. Writing happens in a
freshly spawned process (:func:`run_in_fresh_process`): FFCV's writer forks, and forking a
process that already ran a Loader can deadlock.

This module imports neither Lightning nor a Loader, so the spawned writer process starts fast;
the loaders are in :mod:`datamodules.transfer`.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from datamodules.errors import UserInputError
from datamodules.ffcv_store import run_in_fresh_process, write_target_beton

if TYPE_CHECKING:
    from experiments.config import DataConfig, TransferConfig

TARGETS_SUBDIR = "targets"
META_FILE = "meta.json"
FORMAT_VERSION = 1  # bump when the files' layout or the build changes


@dataclass(frozen=True)
class TargetSpec:
    """Everything that decides a target's files; its hash names the folder."""

    target: str
    root: str
    resolution: int
    max_per_class: int
    seed: int
    write_mode: str
    jpeg_quality: int
    # the pretraining corpus's settings the target must match (held-out split, synthetic world)
    holdout_fraction: float = 0.2
    synthetic_concepts: int = 300
    zipf_exponent: float = 1.0

    @classmethod
    def from_config(cls, transfer_cfg: TransferConfig, data_cfg: DataConfig, seed: int):
        return cls(
            target=str(transfer_cfg.target),
            root=str(Path(transfer_cfg.target_root).resolve()) if transfer_cfg.target_root else "",
            resolution=int(transfer_cfg.resolution),
            max_per_class=int(transfer_cfg.max_per_class),
            seed=int(seed),
            write_mode=str(data_cfg.write_mode),
            jpeg_quality=int(data_cfg.jpeg_quality),
            holdout_fraction=float(data_cfg.holdout_fraction),
            synthetic_concepts=int(data_cfg.synthetic_concepts),
            zipf_exponent=float(data_cfg.zipf_exponent),
        )

    def key(self) -> str:
        blob = json.dumps({**self.__dict__, "format": FORMAT_VERSION}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def folder_name(self) -> str:
        return f"{self.target}-r{self.resolution}-{self.key()}"


@dataclass(frozen=True)
class TargetFiles:
    """A written target: its .beton files and what they hold."""

    dir: Path
    name: str
    classes: list[str]
    num_train: int
    num_val: int
    train_counts: list[int]  # images per class in train

    @property
    def train(self) -> Path:
        return self.dir / "train.beton"

    @property
    def val(self) -> Path:
        return self.dir / "val.beton"

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @classmethod
    def read(cls, folder: Path) -> TargetFiles:
        meta = json.loads((folder / META_FILE).read_text())
        return cls(
            dir=folder,
            name=meta["target"],
            classes=list(meta["classes"]),
            num_train=int(meta["num_train"]),
            num_val=int(meta["num_val"]),
            train_counts=list(meta["train_counts"]),
        )


def _labels_of(split, what: str, target: str) -> np.ndarray:
    """The class labels of a split (reads only labels where the split exposes them)."""
    if split is None or len(split) == 0:
        raise UserInputError(
            f"target '{target}' has no {what} images; it needs both a train and a val split"
        )
    labels = getattr(split, "labels", None)
    if labels is None:
        labels = [split[i][1] for i in range(len(split))]
    return np.asarray(labels, dtype=np.int64)


def check_target(name: str, classes: list[str], train_labels, val_labels) -> None:
    """Reject targets a classifier cannot be trained or evaluated on, saying what to fix."""
    if len(classes) < 2:
        raise UserInputError(
            f"target '{name}' has {len(classes)} class(es); a transfer target needs at least 2"
        )
    for what, labels in (("train", train_labels), ("val", val_labels)):
        if len(labels) == 0:
            raise UserInputError(f"target '{name}': the {what} split is empty")
        if labels.min() < 0 or labels.max() >= len(classes):
            raise UserInputError(
                f"target '{name}': {what} labels must lie in [0, {len(classes)}), "
                f"got [{labels.min()}, {labels.max()}]"
            )
    if len(np.unique(train_labels)) < 2:
        raise UserInputError(
            f"target '{name}': the train split holds a single class; need at least 2"
        )


def _build_target(
    spec: TargetSpec, cache_dir: str, out_dir: str, num_workers: int, load_fn=None
) -> dict:
    """Load the target, check it, write its two .beton files and meta.json (in a fresh process)."""
    if load_fn is None:
        from datamodules.sources import load_target as load_fn

    out = Path(out_dir)
    data = load_fn(
        spec.target,
        root=spec.root,
        image_size=spec.resolution,
        seed=spec.seed,
        cache_dir=cache_dir,
        holdout_fraction=spec.holdout_fraction,
        max_per_class=spec.max_per_class,
        synthetic_concepts=spec.synthetic_concepts,
        zipf_exponent=spec.zipf_exponent,
    )
    train_labels = _labels_of(data.train, "train", spec.target)
    val_labels = _labels_of(data.val, "val", spec.target)
    check_target(spec.target, list(data.classes), train_labels, val_labels)
    stats = {}
    for split, items in (("train", data.train), ("val", data.val)):
        stats[split] = write_target_beton(
            out / f"{split}.beton",
            items,
            max_resolution=spec.resolution,
            jpeg_quality=spec.jpeg_quality,
            write_mode=spec.write_mode,
            num_workers=num_workers,
        )
    counts = np.bincount(train_labels, minlength=len(data.classes))
    meta = {
        "target": spec.target,
        "classes": list(data.classes),
        "num_train": len(train_labels),
        "num_val": len(val_labels),
        "train_counts": counts.tolist(),
        "val_counts": np.bincount(val_labels, minlength=len(data.classes)).tolist(),
        "spec": spec.__dict__,
        "format": FORMAT_VERSION,
        "write": stats,
    }
    tmp = out / f".{META_FILE}.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, out / META_FILE)  # meta.json last: its presence marks a complete target
    return meta


def ensure_target_files(
    transfer_cfg: TransferConfig, data_cfg: DataConfig, seed: int = 0, load_fn=None
) -> TargetFiles:
    """The target's .beton files, written (in a spawned process) unless already there.

    ``load_fn`` (a module-level function with ``load_target``'s signature, so the spawned
    process can import it) replaces ``datamodules.sources.load_target``; tests use it.
    """
    spec = TargetSpec.from_config(transfer_cfg, data_cfg, seed)
    if spec.resolution < 8:
        raise UserInputError(f"transfer.resolution={spec.resolution} is too small (use >= 8)")
    folder = Path(data_cfg.cache_dir) / TARGETS_SUBDIR / spec.folder_name()
    done = (folder / META_FILE).is_file() and all(
        (folder / f).is_file() for f in ("train.beton", "val.beton")
    )
    if not done:
        print(f"[transfer] writing target '{spec.target}' at {spec.resolution}px to {folder}")
        run_in_fresh_process(
            _build_target,
            spec,
            str(data_cfg.cache_dir),
            str(folder),
            int(data_cfg.num_workers),
            load_fn,
        )
    return TargetFiles.read(folder)
