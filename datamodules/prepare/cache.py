"""The stage cache: keys and atomic folders.

Each stage's folder is named by a hash of exactly the config fields it reads (the ``*_FIELDS``
tuples) and the keys of its inputs; it is built under a temporary name and renamed when complete,
so a folder with its final name is complete. ``stage_log.jsonl`` beside the folders records each
build or reuse.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from datamodules.errors import UserInputError
from datamodules.io import atomic_write_json
from datamodules.provenance import dpkg_version

PREPARE_VERSION = 1  # bump when a stage's output format or semantics change

# the config fields each stage reads (its cache key hashes exactly these)
SCAN_FIELDS = (
    "source",
    "manifest",
    "image_size",
    "num_images",
    "synthetic_concepts",
    "zipf_exponent",
    "holdout_fraction",
    "holdout_categories",
)
# source=webdataset only (other sources' keys stay as they were)
WEBDATASET_FIELDS = ("webdataset", "webdataset_tags_field", "webdataset_caption_field")
VOCAB_FIELDS = (
    "vocab",
    "top_k",
    "min_count",
    "ambiguity",
    "stop_tags",
    "max_tag_share",
    "drop_category_names",
)
DEDUP_FIELDS = ("dedup", "dedup_hamming", "dedup_targets")
WRITE_FIELDS = ("scale", "val_fraction", "max_labels", "jpeg_quality", "write_mode", "shard_size")


def _field(data_cfg: Any, name: str) -> Any:
    value = getattr(data_cfg, name)  # a misspelled field fails here, never hashes as None
    return list(value) if isinstance(value, list | tuple) else value


def stage_key(data_cfg: Any, fields: Sequence[str], *parts: Any) -> str:
    """16 hex chars of sha256 over the named config fields and any upstream keys / extras."""
    payload = {
        "version": PREPARE_VERSION,
        "fields": {f: _field(data_cfg, f) for f in fields},
        "parts": list(parts),
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _source_fingerprint(data_cfg: Any) -> dict:
    """What identifies the raw input beyond the config: the manifest file's (or each tar's) size
    and mtime, the OpenClipart package version."""
    if data_cfg.source == "manifest" and data_cfg.manifest:
        path = Path(data_cfg.manifest).expanduser()
        if not path.is_file():
            raise UserInputError(
                f"data.manifest={data_cfg.manifest!r}: file not found (a .jsonl/.csv/.parquet)"
            )
        st = path.stat()
        return {"manifest": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    if data_cfg.source == "openclipart":
        return {"openclipart-svg": dpkg_version("openclipart-svg")}
    if data_cfg.source == "webdataset":
        from datamodules.sources.webdataset import tar_paths

        return {"tars": [[p, *_size_mtime(p)] for p in tar_paths(data_cfg.webdataset)]}
    return {}


def _size_mtime(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns


def _write_json(path: Path, obj: Any) -> None:
    atomic_write_json(path, obj, default=str)


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def _log(path: Path, stage: str, key: str, reused: bool, seconds: float) -> None:
    """Append one line per stage run or reuse (a human-readable history of the cache)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "stage": stage, "key": key}
    line.update(reused=reused, seconds=seconds, pid=os.getpid())
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(line) + "\n")
