"""Stage 4, write: labelled, non-duplicate images -> nested scale subset -> train/val split ->
.beton shards (``data.write.shard_size`` > 0 makes several train shards, written in parallel and
resumably by ``datamodules.shards``) plus ids.txt, vocab.tsv, the reports and manifest.json.

``SourceItems`` is the FFCV writer's item adapter: it decodes the scanned records lazily from the
source shards the scan stage used.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from datamodules import hashtags, shards, sources, subsets
from datamodules.errors import UserInputError
from datamodules.prepare.cache import _read_json, _write_json
from datamodules.prepare.labels import _load_labels
from datamodules.prepare.manifest import CORRUPT_LISTED, build_manifest
from datamodules.prepare.scan import _load_records
from datamodules.sources.base import load_rgb


class SourceItems:
    """``items[i] = (rgb, label ids, sample id)`` for the .beton writer, decoding lazily from
    the source shards the scan stage used (picklable; sources are opened on first use)."""

    def __init__(
        self,
        data_cfg: Any,
        num_shards: int,
        rows: Sequence[dict],
        labels: Sequence[np.ndarray],
        sample_ids: Sequence[int],
    ):
        self.data_cfg = data_cfg
        self.num_shards = num_shards
        self.opener = sources.open_source  # pickled by reference: the child calls the same
        self.locs = [(r["shard"], r["index"], r["id"]) for r in rows]
        self.labels = [np.asarray(x, np.int64) for x in labels]
        self.sample_ids = list(sample_ids)
        self._shards: dict[int, Sequence] = {}

    def open(self) -> SourceItems:
        """Open every needed shard now (before FFCV forks its workers, so they share them)."""
        for shard in sorted({s for s, _, _ in self.locs}):
            self._source(shard)
        return self

    def _source(self, shard: int) -> Sequence:
        if shard not in self._shards:
            self._shards[shard] = self.opener(
                self.data_cfg, shard=shard, num_shards=self.num_shards
            )
        return self._shards[shard]

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_shards": {}}

    def __len__(self) -> int:
        return len(self.locs)

    def __getitem__(self, i: int):
        shard, index, source_id = self.locs[i]
        rec = self._source(shard)[index]
        if rec.source_id != source_id:
            raise RuntimeError(
                f"source changed since it was scanned: shard {shard} item {index} is "
                f"{rec.source_id}, expected {source_id}; delete the scan stage folder"
            )
        rgb = load_rgb(rec, size=int(self.data_cfg.source.image_size))
        return rgb, self.labels[i], self.sample_ids[i]


def _build_prepared(
    data_cfg: Any,
    seed: int,
    dirs: dict[str, Path],
    stages: dict[str, dict],
    out: Path,
    progress: bool,
    launcher: str = "local",
    options: dict | None = None,
) -> None:
    started = time.perf_counter()
    scan_dir, vocab_dir, dedup_dir = dirs["scan"], dirs["vocab"], dirs["dedup"]
    rows = _load_records(scan_dir)
    labels = _load_labels(vocab_dir)
    removed = set(np.load(dedup_dir / "removed.npy").tolist())
    scan_stage = _read_json(scan_dir / "stage.json")
    corrupt = _read_json(scan_dir / "corrupt.json")

    labelled = [k for k in range(len(rows)) if len(labels[k])]
    pool = [k for k in labelled if k not in removed]
    pool_ids = [rows[k]["id"] for k in pool]
    if not pool:
        raise UserInputError(
            "no labelled images remain after dedup; relax the vocabulary settings or check the "
            "dedup report"
        )
    write = data_cfg.write
    chosen = [pool[j] for j in subsets.scale_subset(pool_ids, float(write.scale), seed)]
    train_idx, val_idx = subsets.train_val_split(
        [rows[k]["id"] for k in chosen], float(write.val_fraction), seed
    )
    train_rows = [chosen[j] for j in train_idx]
    val_rows = [chosen[j] for j in val_idx]
    if not train_rows:
        raise UserInputError(
            f"data.write.scale={write.scale} leaves no training images ({len(chosen)} chosen, "
            f"all in validation); use a larger scale or a smaller data.write.val_fraction"
        )
    ordered = train_rows + val_rows  # sample_id = row in ids.txt
    (out / "ids.txt").write_text("".join(rows[k]["id"] + "\n" for k in ordered))
    shutil.copyfile(vocab_dir / "vocab.tsv", out / "vocab.tsv")
    shutil.copyfile(vocab_dir / "vocab_report.json", out / "vocab_report.json")
    shutil.copyfile(dedup_dir / "dedup_report.json", out / "dedup_report.json")

    width = int(write.max_labels)
    per_shard = int(write.shard_size) or len(train_rows)
    num_files = math.ceil(len(train_rows) / per_shard)
    num_shards = int(scan_stage["num_shards"])
    writes = []  # (file, rows, first sample id)
    for f in range(num_files):
        part = train_rows[f * per_shard : (f + 1) * per_shard]
        writes.append((f"train-{f:03d}.beton", part, f * per_shard))
    if val_rows:
        writes.append(("val.beton", val_rows, len(train_rows)))
    vocab = hashtags.Vocabulary.load(out / "vocab.tsv")
    jobs = [
        (
            name,
            SourceItems(
                data_cfg,
                num_shards,
                [rows[k] for k in part],
                [labels[k] for k in part],
                range(first, first + len(part)),
            ),
        )
        for name, part, first in writes
    ]
    # a staging folder that outlives a failed write: a rerun writes only the missing shards
    staging = out.parent / f".{dirs['final'].name}.shards"
    records, _ = shards.write_shards(
        jobs,
        data_cfg,
        vocab.sha256,
        staging=staging,
        launcher=launcher,
        options=options,
        progress=progress,
    )
    for name, _ in jobs:
        os.replace(staging / name, out / name)
    shutil.rmtree(staging, ignore_errors=True)
    write_stats = {
        name: {k: v for k, v in rec.items() if k != "vocab_sha256"} for name, rec in records.items()
    }

    hashtag_counts = np.zeros(len(vocab), np.int64)
    for k in train_rows:
        hashtag_counts[labels[k][:width]] += 1
    truncated = sum(int(s["images_truncated"]) for s in write_stats.values())
    stages["write"]["seconds"] = round(time.perf_counter() - started, 3)
    stats = {
        "images_in": int(scan_stage["records_in"]),
        "decoded": len(rows),
        "corrupt": len(corrupt),
        "corrupt_ids": corrupt[:CORRUPT_LISTED],
        "unlabeled": len(rows) - len(labelled),
        "deduplicated": len(removed),
        "deduplicated_labelled": len(labelled) - len(pool),
        "pool": len(pool),
        "kept": len(chosen),
        "train": len(train_rows),
        "val": len(val_rows),
        "images_truncated_labels": truncated,
        "stages": stages,
        "write": write_stats,
    }
    manifest = build_manifest(
        data_cfg,
        seed,
        records,
        train_files=[name for name, _, _ in writes if name != "val.beton"],
        has_val=bool(val_rows),
        num_train=len(train_rows),
        max_labels=width,
        vocab=vocab,
        hashtag_counts=hashtag_counts,
        stats=stats,
    )
    _write_json(out / "manifest.json", manifest)  # last: the folder is renamed after this
