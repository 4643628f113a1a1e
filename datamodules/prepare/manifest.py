"""The prepared folder's manifest.json (the contract in docs/CONTRACTS.md), the versions of what
made the data, and the one-screen summary printed after a build."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from datamodules import shards
from datamodules.data_legacy import upgrade_data
from datamodules.prepare.cache import _read_json
from datamodules.provenance import dpkg_version, package_versions, provenance

CORRUPT_LISTED = 200  # corrupt inputs listed by id in the manifest (all are in the scan stage)


def data_versions(data_cfg: Any) -> dict:
    """What decodes, renders, hashes and writes the data, beyond provenance's RUN_PACKAGES."""
    dists = ("pillow", "imagehash", "resvg-py", "opencv-python", "numba")
    versions: dict[str, Any] = package_versions(dists)
    del versions["python"]  # provenance records it
    if data_cfg.source.name == "openclipart":
        versions["openclipart-svg"] = dpkg_version("openclipart-svg")
    return versions


def build_manifest(
    data_cfg: Any,
    seed: int,
    records: dict[str, dict],
    *,
    train_files: Sequence[str],
    has_val: bool,
    num_train: int,
    max_labels: int,
    vocab: Any,
    hashtag_counts: np.ndarray,
    stats: dict,
) -> dict:
    """manifest.json's content: the train shards (``train_files``, in sample-id order) and the
    val file from the writers' ``records``, the label space, the config, provenance, ``stats``."""
    return {
        "train": [shards.manifest_entry(records[name]) for name in train_files],
        "val": (
            shards.manifest_entry(records["val.beton"]) if has_val else {"file": "", "count": 0}
        ),
        "num_train": num_train,
        "max_labels": max_labels,
        "vocab_size": len(vocab),
        "vocab_sha256": vocab.sha256,
        "hashtag_counts": [int(c) for c in hashtag_counts],
        "config": {**dataclasses.asdict(data_cfg), "seed": seed},
        # commit, dirty flag, command line; versions of the run's and the data's libraries
        "provenance": provenance(extra_versions=data_versions(data_cfg)),
        "stats": stats,
    }


def format_summary(prepared: Path) -> str:
    """Images in, kept, deduplicated, corrupt, unlabeled, time per stage (from manifest.json)."""
    manifest = _read_json(Path(prepared) / "manifest.json")
    # an older folder's manifest holds the flat data layout
    scale = upgrade_data(manifest["config"])["write"]["scale"]
    s = manifest["stats"]
    lines = [
        f"prepared: {prepared}",
        f"  images in     {s['images_in']:>10,}",
        f"  corrupt       {s['corrupt']:>10,}",
        f"  unlabeled     {s['unlabeled']:>10,}",
        f"  deduplicated  {s['deduplicated']:>10,}  (of which labelled: {s['deduplicated_labelled']:,})",
        f"  kept          {s['kept']:>10,}  (data.write.scale={scale})",
        f"  train / val   {s['train']:>10,} / {s['val']:,} in {len(manifest['train'])} train shard(s)",
        f"  vocabulary    {manifest['vocab_size']:>10,} hashtags",
    ]
    for name in ("scan", "vocab", "dedup", "write"):
        info = s["stages"][name]
        how = "reused" if info["reused"] else "built"
        lines.append(f"  stage {name:<7} {how:>7} {info['seconds']:>9.1f} s  ({info['key']})")
    for c in s["corrupt_ids"][:10]:
        lines.append(f"  corrupt: {c['id']}: {c['reason']}")
    if s["corrupt"] > 10:
        lines.append(f"  ... {s['corrupt'] - 10} more corrupt inputs in manifest.json stats")
    return "\n".join(lines)
