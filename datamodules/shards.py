"""The .beton shards of a prepared folder: written in parallel and resumably, checked on read.

Writing (:func:`write_shards`). Every file (each train shard, ``val.beton``) is written by
:func:`write_shard` in a process of its own (``datamodules.launch.run_each``: a local pool of
spawned processes, submitit's LocalExecutor or a SLURM array), because FFCV's DatasetWriter
forks and can deadlock in a process that already ran a Loader. The files go to a staging folder
that survives a failure: a file is written under a temporary name and renamed when complete
(``ffcv_store``), then its record ``<file>.json`` (images, bytes, BLAKE2b checksum, vocabulary)
is written next to it. A shard counts as written only with its record and the size the record
states, so a killed write leaves nothing that looks complete, and a rerun writes only the
missing shards.

Reading (:func:`check_train_shards`). Before a datamodule reads a prepared folder, every train
shard listed in ``manifest.json`` must exist, have the byte size and the image count the
manifest states (the FFCV header), be labelled with the manifest's vocabulary, and start at the
sample id that follows the previous shard; with ``full=True`` its checksum is recomputed too
(a read of every byte, so on request: ``data.loading.verify_checksums``). Any failure is one line
naming the shard.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from datamodules.errors import UserInputError

CHECKSUM = "blake2b"


def file_checksum(path: str | Path) -> str:
    """BLAKE2b (hashlib's, 32-byte digest) of a file's bytes, hex."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, lambda: hashlib.blake2b(digest_size=32)).hexdigest()


def _record_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def written(path: str | Path, vocab_sha256: str) -> dict | None:
    """The record of a completely written shard at ``path``, or None when the shard is missing,
    lacks its record, or its size or vocabulary differ from the record."""
    path = Path(path)
    record = _record_path(path)
    if not (path.is_file() and record.is_file()):
        return None
    try:
        info = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if info.get("bytes") != path.stat().st_size or info.get("vocab_sha256") != vocab_sha256:
        return None
    return info


def write_shard(path: str, items: Any, data_cfg: Any, vocab_sha256: str, workers: int) -> dict:
    """Write one hashtag .beton (``items``: ``prepare.SourceItems``) and its record; return the
    record. Runs in a process of its own (module level: picklable for any launcher)."""
    from datamodules.ffcv_store import write_hashtag_beton

    stats = write_hashtag_beton(
        path,
        items.open(),
        max_labels=int(data_cfg.write.max_labels),
        max_resolution=int(data_cfg.source.image_size),
        jpeg_quality=int(data_cfg.write.jpeg_quality),
        write_mode=data_cfg.write.mode,
        num_workers=max(1, int(workers)),
    )
    info = {
        **stats,
        "count": int(stats["num_images"]),
        CHECKSUM: file_checksum(path),
        "vocab_sha256": vocab_sha256,
        "first_sample_id": int(items.sample_ids[0]) if len(items) else 0,
    }
    record = _record_path(Path(path))
    tmp = record.with_name(f".{record.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(info, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, record)
    return info


def write_shards(
    jobs: Sequence[tuple[str, Any]],
    data_cfg: Any,
    vocab_sha256: str,
    *,
    staging: Path,
    launcher: str = "local",
    options: dict | None = None,
    progress: bool = False,
) -> tuple[dict[str, dict], list[str]]:
    """Write every ``(file name, items)`` job into ``staging`` that is not written yet, in
    parallel. Returns (record per file name, the names written by this call)."""
    from datamodules.launch import run_each

    options = dict(options or {})
    staging.mkdir(parents=True, exist_ok=True)
    for stale in staging.glob(".*.tmp-*"):  # temporaries of a killed write
        stale.unlink(missing_ok=True)
    records = {name: written(staging / name, vocab_sha256) for name, _ in jobs}
    todo = [(name, items) for name, items in jobs if records[name] is None]
    if todo:
        processes = min(len(todo), int(options.get("workers") or os.cpu_count() or 1))
        options["workers"] = processes
        if launcher == "slurm":  # each job has its own cores
            cores = int(options.get("cpus_per_task") or 1)
        else:  # the processes share this machine's cores
            cores = max(1, (os.cpu_count() or 1) // max(1, processes))
        calls = [
            (str(staging / name), items, data_cfg, vocab_sha256, cores) for name, items in todo
        ]
        results = run_each(
            write_shard,
            calls,
            launcher=launcher,
            options=options,
            folder=staging.parent / f"{staging.name}.submitit",
            desc="write .beton",
            progress=progress,
            fork_children=True,
        )
        for (name, _), info in zip(todo, results):
            records[name] = info
    return records, [name for name, _ in todo]


def manifest_entry(record: dict) -> dict:
    """What ``manifest.json`` lists per shard."""
    keys = ("file", "count", "bytes", CHECKSUM, "vocab_sha256", "first_sample_id")
    return {k: record[k] for k in keys}


# --------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------
def _header_count(path: Path) -> int | None:
    from ffcv.types import HeaderType

    try:
        header = np.fromfile(str(path), dtype=HeaderType, count=1)
    except (OSError, ValueError):
        return None
    return int(header[0]["num_samples"]) if len(header) else None


def check_train_shards(folder: Path, manifest: dict, full: bool = False) -> list[Path]:
    """The train shard paths of a prepared folder, in sample-id order, after checking each
    against ``manifest.json`` (see the module docstring); UserInputError naming the shard."""
    entries = manifest["train"]
    if not entries:
        raise UserInputError(f"{folder}/manifest.json lists no train shard; prepare again")
    vocab = manifest.get("vocab_sha256")
    paths, first = [], 0
    fix = f"delete {folder} and run `python -m experiments prepare` again"
    for entry in entries:
        path = folder / entry["file"]
        where = f"{folder.name}/{entry['file']}"
        if not path.is_file():
            raise UserInputError(f"train shard {where} is missing; {fix}")
        size = path.stat().st_size
        if "bytes" in entry and size != int(entry["bytes"]):
            raise UserInputError(
                f"train shard {where} has {size} bytes, manifest.json says {entry['bytes']} "
                f"(truncated or replaced); {fix}"
            )
        count = _header_count(path)
        if count != int(entry["count"]):
            raise UserInputError(
                f"train shard {where} holds {count} images, manifest.json says {entry['count']} "
                f"(not an FFCV file of this preparation); {fix}"
            )
        if vocab and entry.get("vocab_sha256", vocab) != vocab:
            raise UserInputError(
                f"train shard {where} was labelled with another vocabulary (vocab_sha256 "
                f"{entry['vocab_sha256'][:12]}..., the folder's is {vocab[:12]}...); {fix}"
            )
        if int(entry.get("first_sample_id", first)) != first:
            raise UserInputError(
                f"train shard {where} starts at sample id {entry['first_sample_id']}, expected "
                f"{first} (shards out of order or missing); {fix}"
            )
        if full and CHECKSUM in entry and file_checksum(path) != entry[CHECKSUM]:
            raise UserInputError(
                f"train shard {where}: {CHECKSUM} checksum differs from manifest.json "
                f"(corrupted); {fix}"
            )
        paths.append(path)
        first += int(entry["count"])
    if first != int(manifest["num_train"]):
        raise UserInputError(
            f"{folder}/manifest.json: train shards hold {first} images, num_train is "
            f"{manifest['num_train']}; {fix}"
        )
    return paths
