"""The stage cache: keys and atomic folders.

Each stage's folder is named by a hash of its own section of the data config (every field of
it: ``data.source`` for the scan, ``data.vocab``, ``data.dedup``, ``data.write``) and the keys
of its inputs; it is built under a temporary name and renamed when complete, so a folder with its
final name is complete. ``stage_log.jsonl`` beside the folders records each build or reuse.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

from datamodules.data_legacy import FLAT_NAMES
from datamodules.errors import UserInputError
from datamodules.io import atomic_write_json
from datamodules.provenance import dpkg_version

PREPARE_VERSION = 1  # bump when a stage's output format or semantics change


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, list | tuple) else value


def section_fields(data_cfg: Any, section: str, omit: Collection[str] = ()) -> dict[str, Any]:
    """Every field of one section of the data config, less ``omit``, by its flat name.

    The flat names (``data_legacy.FLAT_NAMES``: ``source``, ``dedup_hamming``, ``write_mode``,
    ...) are what the keys hashed before the sections existed, so folders prepared then keep
    their names. A misspelled section or omitted field fails here, never hashes as nothing.
    """
    values = getattr(data_cfg, section)
    names = [f.name for f in dataclasses.fields(values)]
    unknown = sorted(set(omit) - set(names))
    if unknown:
        raise AttributeError(f"data.{section} has no field {', '.join(unknown)}")
    flat = FLAT_NAMES[section]
    return {flat[name]: _plain(getattr(values, name)) for name in names if name not in omit}


def hash_key(fields: dict[str, Any], *parts: Any) -> str:
    """16 hex chars of sha256 over named config values and any upstream keys / extras."""
    payload = {"version": PREPARE_VERSION, "fields": fields, "parts": list(parts)}
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def stage_key(data_cfg: Any, section: str, *parts: Any, omit: Collection[str] = ()) -> str:
    """A stage's key: the hash of its section (:func:`section_fields`) and ``parts``."""
    return hash_key(section_fields(data_cfg, section, omit), *parts)


def _source_fingerprint(source: Any) -> dict:
    """What identifies the raw input beyond ``data.source``: the manifest file's (or each tar's)
    size and mtime, the OpenClipart package version."""
    if source.name == "manifest" and source.manifest:
        path = Path(source.manifest).expanduser()
        if not path.is_file():
            raise UserInputError(
                f"data.source.manifest={source.manifest!r}: file not found (a .jsonl/.csv/.parquet)"
            )
        st = path.stat()
        return {"manifest": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    if source.name == "openclipart":
        return {"openclipart-svg": dpkg_version("openclipart-svg")}
    if source.name == "webdataset":
        from datamodules.sources.webdataset import tar_paths

        return {"tars": [[p, *_size_mtime(p)] for p in tar_paths(source.webdataset)]}
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
