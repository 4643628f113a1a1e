"""Atomic file writes for the data layer (``datamodules`` must not import ``experiments``).

A file is written under a temporary name in the same folder, flushed to disk, then renamed over
the target with ``os.replace``: a reader sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from datamodules.errors import UserInputError


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def json_bytes(obj: Any, default: Callable[[Any], Any] | None = None) -> bytes:
    """Canonical JSON: sorted keys, 2-space indent, UTF-8, trailing newline (byte-stable output).
    ``default`` as :func:`json.dumps`'s: what to write for an object JSON has no type for (run
    records pass ``str``, so a path is written as its text; ``None``: such an object raises)."""
    text = json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False, default=default)
    return (text + "\n").encode("utf-8")


def atomic_write_json(
    path: str | os.PathLike, obj: Any, default: Callable[[Any], Any] | None = None
) -> Path:
    """``obj`` as canonical JSON (:func:`json_bytes`), written atomically: the one JSON writer."""
    return atomic_write_bytes(path, json_bytes(obj, default))


def iter_jsonl(
    path: str | os.PathLike, where: Callable[[int], str] | None = None
) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value) for every non-blank line of a JSONL file; a line that is not
    JSON is a UserInputError that starts with ``where(line)`` (default ``path:line``)."""
    where = where or (lambda n: f"{path}:{n}")
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                yield n, json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserInputError(f"{where(n)}: not valid JSON ({exc.msg})") from None


def build_folder_atomically(final: Path, build: Callable[[Path], None]) -> None:
    """Run ``build(tmp)`` in a temporary sibling folder, then rename it to ``final``: a folder
    with its final name is complete. If another process completed ``final`` meanwhile, its
    result is kept and ours discarded."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        build(tmp)
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.is_dir():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
