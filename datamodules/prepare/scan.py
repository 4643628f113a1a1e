"""Stage 1, scan: decode every source image (corrupt ones skipped, counted and listed), its
dedup signature and the tag counts, one source shard at a time, then merged in id order.

The shards run in-process, in a process pool or as a submitit job array
(``datamodules.launch.run_each``); per-shard tag counts are merged, so the corpus never has to
fit one process, and the merged outputs do not depend on the number of shards.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from datamodules import dedup, hashtags, sources
from datamodules.errors import UserInputError
from datamodules.prepare.cache import _read_json, _write_json
from datamodules.sources.base import CorruptImage, load_rgb


def scan_shard(
    data_cfg: Any,
    shard: int,
    num_shards: int,
    out_dir: str,
    progress: bool,
    opener: Callable | None = None,
) -> str:
    """Decode every record of one source shard; write ``shard-<i>.{jsonl,npz,meta.json}``.

    Module-level and picklable: it runs in-process, in a process pool or as a submitit job.
    ``opener`` is ``open_source`` (passed explicitly so a pool worker or a job on another machine
    calls the same function as the parent). Returns the path prefix of the written files.
    """
    records = (opener or sources.open_source)(data_cfg, shard=shard, num_shards=num_shards)
    size = int(data_cfg.source.image_size)
    kept, sigs, corrupt = [], [], []
    tag_counts: Counter = Counter()
    desc = f"scan shard {shard + 1}/{num_shards}"
    for index in tqdm(range(len(records)), desc=desc, disable=not progress, unit="img"):
        rec = records[index]
        try:
            rgb = load_rgb(rec, size=size)
        except CorruptImage as exc:
            corrupt.append({"id": rec.source_id, "reason": str(exc)})
            continue
        sigs.append(dedup.signature(rgb))
        kept.append(
            {
                "id": rec.source_id,
                "tags": list(rec.tags),
                "category": rec.category,
                "shard": shard,
                "index": index,
            }
        )
        tag_counts.update(hashtags.count_tags([rec.tags]))
    prefix = Path(out_dir) / f"shard-{shard:05d}"
    with open(f"{prefix}.jsonl", "w", encoding="utf-8") as fh:
        for row in kept:
            fh.write(json.dumps(row) + "\n")
    signatures = dedup.Signatures.from_rows(sigs)
    signatures.save(f"{prefix}.npz")
    _write_json(
        Path(f"{prefix}.meta.json"),
        {"records": len(records), "corrupt": corrupt, "tag_counts": dict(tag_counts)},
    )
    return str(prefix)


def _run_shards(
    data_cfg: Any, num_shards: int, out_dir: Path, launcher: str, progress: bool, options: dict
) -> None:
    """Run :func:`scan_shard` for every shard with the chosen launcher."""
    opener = sources.open_source
    args = [(data_cfg, i, num_shards, str(out_dir)) for i in range(num_shards)]
    if num_shards == 1 and launcher == "local":
        scan_shard(*args[0], progress, opener)
        return
    if launcher in ("local", "submitit-local"):
        # open shard 0 here first: a source with a one-off build step (OpenClipart rasterizes
        # every SVG into its cache, with all cores) does it once, not once per shard process
        opener(data_cfg, shard=0, num_shards=num_shards)
    from datamodules.launch import run_each

    calls = [(*a, False, opener) for a in args]
    folder = out_dir.parent / f"{out_dir.name}.submitit"
    run_each(
        scan_shard,
        calls,
        launcher=launcher,
        options=options,
        folder=folder,
        desc="scan shards",
        progress=progress,
    )


def build_scan_stage(
    data_cfg: Any, out: Path, num_shards: int, launcher: str, progress: bool, options: dict
) -> None:
    """Scan every shard into ``out``, then merge: records.jsonl and signatures.npz (sorted by
    id), corrupt.json, tag_counts.json (the merged per-shard Counters), stage.json."""
    shards_dir = out / "shards"
    shards_dir.mkdir()
    _run_shards(data_cfg, num_shards, shards_dir, launcher, progress, options)
    rows: list[dict] = []
    parts, corrupt = [], []
    counts: Counter = Counter()
    records_in = 0
    for i in range(num_shards):
        prefix = shards_dir / f"shard-{i:05d}"
        with open(f"{prefix}.jsonl", encoding="utf-8") as fh:
            rows.extend(json.loads(line) for line in fh)
        parts.append(dedup.Signatures.load(f"{prefix}.npz"))
        meta = _read_json(Path(f"{prefix}.meta.json"))
        records_in += meta["records"]
        corrupt.extend(meta["corrupt"])
        counts.update(meta["tag_counts"])
    # a canonical order (by id) so the outputs do not depend on the number of shards
    order = sorted(range(len(rows)), key=lambda k: rows[k]["id"])
    rows = [rows[k] for k in order]
    signatures = dedup.Signatures.concat(parts).take(order) if rows else dedup.Signatures.empty()
    with open(out / "records.jsonl", "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
    signatures.save(out / "signatures.npz")
    corrupt.sort(key=lambda c: c["id"])
    _write_json(out / "corrupt.json", corrupt)
    _write_json(out / "tag_counts.json", dict(sorted(counts.items())))
    shutil.rmtree(shards_dir)
    _write_json(
        out / "stage.json",
        {
            "records_in": records_in,
            "decoded": len(rows),
            "corrupt": len(corrupt),
            "num_shards": num_shards,
        },
    )
    if not rows:
        raise UserInputError(
            f"data.source.name={data_cfg.source.name}: none of the {records_in} input images could be decoded "
            f"({len(corrupt)} corrupt); check the paths in the source"
        )


def _load_records(scan_dir: Path) -> list[dict]:
    with open(scan_dir / "records.jsonl", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]
