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
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from datamodules.errors import UserInputError
from datamodules.ffcv_store import run_in_fresh_process, write_target_beton
from datamodules.io import atomic_write_json, build_folder_atomically

if TYPE_CHECKING:
    from datamodules.data_config import DataConfig
    from datamodules.transfer_config import TransferConfig

TARGETS_SUBDIR = "targets"
META_FILE = "meta.json"
FORMAT_VERSION = 3  # bump when the files' layout or the build changes (3: within-target dedup)
GROUPS_FILE = "groups.npz"


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
    holdout_categories: tuple[str, ...] = ()
    synthetic_concepts: int = 300
    zipf_exponent: float = 1.0
    dedup_hamming: int = 4  # within-target near-duplicate groups (the pretraining criterion)

    @classmethod
    def from_config(cls, transfer_cfg: TransferConfig, data_cfg: DataConfig, seed: int):
        return cls(
            target=str(transfer_cfg.target),
            root=str(Path(transfer_cfg.target_root).resolve()) if transfer_cfg.target_root else "",
            resolution=int(transfer_cfg.resolution),
            max_per_class=int(transfer_cfg.max_per_class),
            seed=int(seed),
            write_mode=str(data_cfg.write.mode),
            jpeg_quality=int(data_cfg.write.jpeg_quality),
            holdout_fraction=float(data_cfg.source.holdout_fraction),
            holdout_categories=tuple(sorted(data_cfg.source.holdout_categories)),
            synthetic_concepts=int(data_cfg.source.synthetic_concepts),
            zipf_exponent=float(data_cfg.source.zipf_exponent),
            dedup_hamming=int(data_cfg.dedup.hamming),
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
    dedup_within: dict  # within-target near-duplicate report (see dedup_within_target)

    @property
    def train(self) -> Path:
        return self.dir / "train.beton"

    @property
    def val(self) -> Path:
        return self.dir / "val.beton"

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def groups(self) -> dict[str, np.ndarray]:
        """Near-duplicate group ids per split (``train``, ``val``: int64, file order); images of
        one group are copies of each other, so a k-fold split must keep them in one fold."""
        with np.load(self.dir / GROUPS_FILE) as z:
            return {"train": z["train"], "val": z["val"]}

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
            dedup_within=dict(meta["dedup_within"]),
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


class _Subset:
    """``items[index[i]]``: the images a within-target dedup keeps (picklable, lazy)."""

    def __init__(self, items, index: np.ndarray):
        self.items, self.index = items, np.asarray(index, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i):
        return self.items[int(self.index[i])]


def _label_conflicts(groups: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """bool [N]: the row's group holds more than one label."""
    _, inverse = np.unique(groups, return_inverse=True)
    lo = np.full(inverse.max() + 1, np.iinfo(np.int64).max)
    hi = np.full(inverse.max() + 1, -1)
    np.minimum.at(lo, inverse, labels)
    np.maximum.at(hi, inverse, labels)
    return lo[inverse] != hi[inverse]


def dedup_within_target(
    train_sigs, val_sigs, train_labels: np.ndarray, val_labels: np.ndarray, hamming: int
) -> dict:
    """Copies inside one target: what to drop, and the groups a k-fold split must respect.

    Dropped, by exact copies (equal pixels at the dedup size): every copy of a picture stored
    under two labels (it has no right answer), and a val image that copies a train image (it
    would be scored on its own training image). Grouped, by the near-duplicate criterion of
    :func:`datamodules.dedup.duplicate_groups` (the one pretraining is deduplicated with):
    look-alikes stay in one fold. Near look-alikes are never dropped: on Fashion-MNIST that
    criterion joins distinct garments (2k of 10k images at 500 per class), and dropping
    those under "conflicting labels" would remove the hard images and flatter every network.
    Returns the kept rows of each split, their group ids (renumbered 0..G-1) and counts.
    """
    from datamodules import dedup

    n_train = len(train_labels)
    labels = np.concatenate([train_labels, val_labels])
    sigs = dedup.Signatures.concat([train_sigs, val_sigs])
    _, exact = np.unique(sigs.exact, axis=0, return_inverse=True)
    exact = exact.reshape(-1)
    conflicting = _label_conflicts(exact, labels)
    keep = ~conflicting
    in_train = np.zeros(exact.max() + 1, dtype=bool)
    in_train[exact[:n_train][keep[:n_train]]] = True
    is_val = np.arange(len(labels)) >= n_train
    cross = is_val & keep & in_train[exact]
    keep &= ~cross
    near = dedup.duplicate_groups(sigs, hamming=hamming)
    sizes = np.bincount(np.unique(near, return_inverse=True)[1])
    _, renumbered = np.unique(near[keep], return_inverse=True)
    groups = np.full(len(labels), -1, dtype=np.int64)
    groups[keep] = renumbered
    return {
        "train_keep": np.flatnonzero(keep[:n_train]),
        "val_keep": np.flatnonzero(keep[n_train:]),
        "train_groups": groups[:n_train][keep[:n_train]],
        "val_groups": groups[n_train:][keep[n_train:]],
        "report": {
            "hamming": int(hamming),
            "images": int(len(labels)),
            "exact_copies": int(len(labels) - len(np.unique(exact))),
            "dropped_conflicting_labels": int(conflicting.sum()),
            "dropped_val_copies_of_train": int(cross.sum()),
            "near_duplicate_groups": int(len(sizes)),
            "images_in_near_duplicate_groups": int(sizes[sizes > 1].sum()),
        },
    }


def _signatures(items, desc: str):
    from tqdm import tqdm

    from datamodules import dedup

    return dedup.compute_signatures(
        items[i][0] for i in tqdm(range(len(items)), desc=desc, leave=False, unit="img")
    )


def _build_target(
    spec: TargetSpec, cache_dir: str, out_dir: str, num_workers: int, load_fn=None
) -> dict:
    """Load the target, deduplicate it within itself, check it, write its two .beton files,
    its near-duplicate groups and meta.json (in a fresh process)."""
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
        holdout_categories=spec.holdout_categories,
        max_per_class=spec.max_per_class,
        synthetic_concepts=spec.synthetic_concepts,
        zipf_exponent=spec.zipf_exponent,
    )
    train_labels = _labels_of(data.train, "train", spec.target)
    val_labels = _labels_of(data.val, "val", spec.target)
    found = dedup_within_target(
        _signatures(data.train, f"{spec.target}: train signatures"),
        _signatures(data.val, f"{spec.target}: val signatures"),
        train_labels,
        val_labels,
        spec.dedup_hamming,
    )
    splits = {
        "train": _Subset(data.train, found["train_keep"]),
        "val": _Subset(data.val, found["val_keep"]),
    }
    train_labels, val_labels = train_labels[found["train_keep"]], val_labels[found["val_keep"]]
    check_target(spec.target, list(data.classes), train_labels, val_labels)
    stats = {}
    for split, items in splits.items():
        stats[split] = write_target_beton(
            out / f"{split}.beton",
            items,
            max_resolution=spec.resolution,
            jpeg_quality=spec.jpeg_quality,
            write_mode=spec.write_mode,
            num_workers=num_workers,
        )
    with open(out / GROUPS_FILE, "wb") as f:
        np.savez(f, train=found["train_groups"], val=found["val_groups"])
    counts = np.bincount(train_labels, minlength=len(data.classes))
    meta = {
        "target": spec.target,
        "classes": list(data.classes),
        "num_train": len(train_labels),
        "num_val": len(val_labels),
        "train_counts": counts.tolist(),
        "val_counts": np.bincount(val_labels, minlength=len(data.classes)).tolist(),
        "dedup_within": found["report"],
        "spec": {**spec.__dict__, "holdout_categories": list(spec.holdout_categories)},
        "format": FORMAT_VERSION,
        "write": stats,
    }
    atomic_write_json(out / META_FILE, meta)  # meta.json last: it marks a complete target
    return meta


def _complete(folder: Path) -> bool:
    return all((folder / f).is_file() for f in (META_FILE, "train.beton", "val.beton", GROUPS_FILE))


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
    if not _complete(folder):
        print(f"[transfer] writing target '{spec.target}' at {spec.resolution}px to {folder}")
        if folder.exists() and not _complete(folder):  # half-written by an older version
            shutil.rmtree(folder)

        def build(tmp: Path) -> None:
            workers = int(data_cfg.loading.num_workers)
            run_in_fresh_process(
                _build_target, spec, str(data_cfg.cache_dir), str(tmp), workers, load_fn
            )

        # whole or absent: runs of a sweep that write the same target at once keep one copy
        build_folder_atomically(folder, build)
    return TargetFiles.read(folder)
