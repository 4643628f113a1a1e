"""The user's own tagged images: a JSONL, CSV or Parquet manifest.

One row per image. Columns:

* ``path`` (required): the image file, absolute or relative to the manifest's folder;
* ``tags`` (a list, or in CSV/strings ``'|'``- or ``','``-separated) and/or ``caption`` (free
  text whose ``#hashtags`` are extracted): at least one of the two columns must exist;
* ``id`` (optional; default: the path as written) and ``category`` (optional).

Images are not opened here; :func:`datamodules.sources.base.load_rgb` decodes them later and
raises :class:`CorruptImage` for missing or broken files, which callers skip and count.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path

from datamodules.errors import UserInputError
from datamodules.hashtags import extract_hashtags
from datamodules.io import iter_jsonl
from datamodules.sources.base import TaggedImage

FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}
PATH_COLUMN = "path"
TAG_COLUMNS = ("tags", "caption")
OPTIONAL_COLUMNS = ("id", "category")
ID_PREFIX = "manifest:"
_SPLIT = re.compile(r"[|,]")


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _read_rows(path: Path) -> tuple[list[dict], list[str]]:
    """Rows as dicts and the column names found (in file order)."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UserInputError(
            f"manifest {path}: unknown format '{path.suffix}'; use one of "
            f"{', '.join(sorted(FORMATS))}"
        )
    if fmt == "jsonl":
        rows, columns = [], {}
        where = lambda n: f"manifest {path}, line {n}"  # noqa: E731
        for n, row in iter_jsonl(path, where):
            if not isinstance(row, dict):
                raise UserInputError(f"{where(n)}: each line must be a JSON object")
            rows.append(row)
            columns.update(dict.fromkeys(row))
        return rows, list(columns)
    import pandas as pd

    try:
        df = (
            pd.read_csv(path, dtype=str, keep_default_na=False)
            if fmt == "csv"
            else pd.read_parquet(path)
        )
    except Exception as exc:  # parser errors of either format: the user's file is malformed
        raise UserInputError(
            f"manifest {path}: cannot read as {fmt}: {str(exc).splitlines()[0]}"
        ) from None
    return df.to_dict("records"), [str(c) for c in df.columns]


def _tag_list(value, where: str) -> list[str]:
    if _missing(value):
        return []
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.startswith("["):  # a JSON list written into a CSV cell
            try:
                value = json.loads(stripped)
            except json.JSONDecodeError:
                raise UserInputError(
                    f"{where}: tags cell looks like a list but is not valid JSON"
                ) from None
        else:
            return [t.strip() for t in _SPLIT.split(stripped) if t.strip()]
    if hasattr(value, "tolist"):  # numpy arrays from Parquet list columns
        value = value.tolist()
    if not isinstance(value, list | tuple):
        raise UserInputError(f"{where}: tags must be a list of strings or a '|'-separated string")
    return [str(t).strip() for t in value if not _missing(t) and str(t).strip()]


def read_manifest(manifest: str | os.PathLike) -> list[TaggedImage]:
    """Parse a manifest into records (tags: the tag list, then the caption's hashtags)."""
    path = Path(manifest)
    if not str(manifest):
        raise UserInputError(
            "data.source.name=manifest needs data.source.manifest=<path to .jsonl/.csv/.parquet>"
        )
    if not path.is_file():
        raise UserInputError(
            f"manifest file not found: {path} (set data.source.manifest to an existing file)"
        )
    rows, columns = _read_rows(path)
    if PATH_COLUMN not in columns or not any(c in columns for c in TAG_COLUMNS):
        raise UserInputError(
            f"manifest {path}: found columns [{', '.join(columns)}]; expected '{PATH_COLUMN}' and "
            f"at least one of {' / '.join(repr(c) for c in TAG_COLUMNS)} "
            f"(optional: {', '.join(OPTIONAL_COLUMNS)})"
        )
    base = path.resolve().parent
    records, seen = [], set()
    for n, row in enumerate(rows, start=1):
        where = f"manifest {path}, row {n}"
        rel = row.get(PATH_COLUMN)
        if _missing(rel) or not str(rel).strip():
            raise UserInputError(f"{where}: empty '{PATH_COLUMN}'")
        rel = str(rel).strip()
        tags = _tag_list(row.get("tags"), where)
        caption = row.get("caption")
        if not _missing(caption) and str(caption):
            tags += extract_hashtags(str(caption))
        rid = row.get("id")
        rid = rel if _missing(rid) or str(rid) == "" else str(rid)
        if rid in seen:
            raise UserInputError(f"{where}: duplicate id '{rid}' (ids must be unique)")
        seen.add(rid)
        category = row.get("category")
        records.append(
            TaggedImage(
                source_id=ID_PREFIX + rid,
                tags=tuple(dict.fromkeys(tags)),
                category=None if _missing(category) or str(category) == "" else str(category),
                path=str(Path(rel) if Path(rel).is_absolute() else base / rel),
            )
        )
    if not records:
        raise UserInputError(f"manifest {path} has no rows")
    return records


def shard_of(source_id: str, num_shards: int) -> int:
    """Stable shard of a source id (sha1), so shards are disjoint and cover the manifest."""
    return int.from_bytes(hashlib.sha1(source_id.encode("utf-8")).digest()[:8], "big") % num_shards


def open_manifest(
    manifest: str | os.PathLike, shard: int = 0, num_shards: int = 1
) -> Sequence[TaggedImage]:
    """The manifest's records for one shard (all when ``num_shards == 1``), in file order."""
    if not 0 <= shard < num_shards:
        raise UserInputError(f"shard {shard} is out of range for num_shards={num_shards}")
    records = read_manifest(manifest)
    if num_shards == 1:
        return records
    return [r for r in records if shard_of(r.source_id, num_shards) == shard]
