"""A seconds-long pretraining through the real FFCV HashtagDataModule (tests only).

:func:`write_prepared` writes a prepared folder (train and val .beton files, manifest.json,
ids.txt) of :func:`tests.fake_data.make_tagged_images`' learnable images, in a spawned process
(FFCV's DatasetWriter forks; see ``datamodules.ffcv_store.run_in_fresh_process``).
``python -m tests.ffcv_pretrain PREPARED RUNS_DIR NAME IMAGES [override ...]`` runs
``run_pretrain`` on it with the tiny model of ``tests.fake_data.tiny_overrides``, one torch
thread and one FFCV loader thread.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

VOCAB, MAX_LABELS, IMAGE_SIZE = 16, 4, 16


class _Rows:
    """(rgb HWC, label ids, sample id) rows of the tagged images from ``first`` on."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, first: int, count: int):
        self.images, self.labels, self.first, self.count = images, labels, first, count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: int):
        k = self.first + i
        row = self.labels[k]
        return self.images[k], row[row >= 0].tolist(), k


def _write(folder: str, num_train: int, num_val: int, seed: int) -> list[int]:
    from datamodules.ffcv_store import write_hashtag_beton
    from tests.fake_data import make_tagged_images

    images, labels = make_tagged_images(num_train + num_val, VOCAB, IMAGE_SIZE, MAX_LABELS, seed)
    rgb = np.ascontiguousarray(images.permute(0, 2, 3, 1).numpy())
    labels = labels.numpy()
    for name, first, count in (
        ("train-000.beton", 0, num_train),
        ("val.beton", num_train, num_val),
    ):
        write_hashtag_beton(
            Path(folder) / name,
            _Rows(rgb, labels, first, count),
            max_labels=MAX_LABELS,
            max_resolution=IMAGE_SIZE,
            write_mode="jpg",
            num_workers=1,
        )
    train = labels[:num_train]
    return np.bincount(train[train >= 0], minlength=VOCAB).tolist()


def write_prepared(folder: Path, num_train: int = 512, num_val: int = 128, seed: int = 0) -> Path:
    """A prepared folder in the manifest.json format of docs/CONTRACTS.md."""
    from datamodules.ffcv_store import run_in_fresh_process

    folder.mkdir(parents=True, exist_ok=True)
    counts = run_in_fresh_process(_write, str(folder), num_train, num_val, seed)
    manifest = {
        "train": [{"file": "train-000.beton", "count": num_train}],
        "val": {"file": "val.beton", "count": num_val},
        "num_train": num_train,
        "max_labels": MAX_LABELS,
        "vocab_size": VOCAB,
        "vocab_sha256": "",
        "hashtag_counts": counts,
        "config": {},
        "provenance": {},
        "stats": {},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    (folder / "ids.txt").write_text("".join(f"img{k}\n" for k in range(num_train + num_val)))
    return folder


def pretrain_in_subprocess(
    prepared: Path, runs_dir: Path, name: str, images: int, *overrides: str
) -> dict:
    """``python -m tests.ffcv_pretrain`` in a fresh process (FFCV state stays there); asserts it
    exits 0 and returns the run's metrics.json."""
    import os
    import subprocess

    root = Path(__file__).resolve().parents[1]
    args = [str(prepared), str(runs_dir), name, str(images), *overrides]
    proc = subprocess.run(
        [sys.executable, "-m", "tests.ffcv_pretrain", *args],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((Path(runs_dir) / name / "metrics.json").read_text())


def main(argv: list[str]) -> None:
    torch.set_num_threads(1)
    from datamodules.pretrain import HashtagDataModule
    from experiments.config import load_config
    from experiments.pretrain import run_pretrain
    from tests.fake_data import tiny_overrides

    prepared, runs_dir, name, images = argv[0], argv[1], argv[2], int(argv[3])
    overrides = [
        *tiny_overrides(runs_dir, name, images),
        f"data.loading.resolution={IMAGE_SIZE}",
        "data.loading.num_workers=1",
        "data.loading.sampling=sqrt",
        *argv[4:],
    ]
    cfg = load_config(None, overrides)
    run_pretrain(cfg, HashtagDataModule(cfg.data, cfg.seed, prepared_dir=prepared))


if __name__ == "__main__":
    main(sys.argv[1:])
