"""The prepare chain: tagged source records -> FFCV .beton shards with a manifest.

``ensure_prepared(data_cfg, seed)`` runs (or reuses) four cached stages::

    scan   open_source -> decode every image (corrupt ones skipped, counted, listed) -> per-image
           dedup signatures + per-shard tag counts, merged        key: source fields
    vocab  merged counts -> build_vocabulary -> labels per image  key: scan + vocabulary fields
    dedup  signatures vs every evaluation image of the targets   key: scan + dedup fields + seed
    write  labelled, non-duplicate images -> nested scale subset -> train/val split -> .beton
           shards + manifest.json, ids.txt, vocab.tsv, vocab_report.json, dedup_report.json
                                                                  key: vocab + dedup + write fields

Each stage's folder is named by a hash of exactly the config fields it depends on and the keys
of its inputs, so changing ``data.scale`` re-runs only the write stage, and changing
``data.vocab`` reuses the decoded source. Every folder is built under a temporary name and
renamed when complete: a folder with its final name is complete. The scan stage can be split
into shards (``open_source(cfg, shard=i, num_shards=N)``) run by a process pool on one machine or
as a submitit job array (``launcher="local"`` runs submitit's LocalExecutor, ``"slurm"`` a SLURM
array); per-shard tag counts are merged, so the corpus never has to fit one process. The
write stage writes its .beton files (``data.shard_size`` > 0 makes several train shards) in
parallel through the same launcher, each file in a process of its own, resumably
(``datamodules.shards``): the manifest lists every shard with its count and checksum.

Layout under ``<data.cache_dir>/prepared/``: ``stages/{scan,vocab,dedup}-<key>/`` and the
prepared folders ``<source>-<key>/`` (see docs/CONTRACTS.md for manifest.json).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm.auto import tqdm

from datamodules import dedup, hashtags, shards, sources, subsets
from datamodules.errors import UserInputError
from datamodules.launch import LAUNCHERS
from datamodules.provenance import package_versions, provenance
from datamodules.sources.base import CorruptImage, TaggedImage, load_rgb

if TYPE_CHECKING:
    from experiments.config import DataConfig

PREPARE_VERSION = 1  # bump when a stage's output format or semantics change
CORRUPT_LISTED = 200  # corrupt inputs listed by id in the manifest (all are in the scan stage)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")

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

# evaluation sets each source is deduplicated against when data.dedup_targets is empty
DEFAULT_DEDUP_TARGETS = {
    "openclipart": ("openclipart_images", "openclipart_categories"),
    "synthetic": ("synthetic_in", "synthetic_fine", "synthetic_scene"),
    "manifest": (),
    "webdataset": (),
}


# --------------------------------------------------------------------------------------------
# keys and atomic folders
# --------------------------------------------------------------------------------------------
def _field(data_cfg: Any, name: str) -> Any:
    value = getattr(data_cfg, name, None)
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
        return {"openclipart-svg": _dpkg_version("openclipart-svg")}
    if data_cfg.source == "webdataset":
        from datamodules.sources.webdataset import tar_paths

        return {"tars": [[p, *_size_mtime(p)] for p in tar_paths(data_cfg.webdataset)]}
    return {}


def _size_mtime(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns


def _build_atomically(final: Path, build: Callable[[Path], None]) -> None:
    """Run ``build(tmp)`` in a temporary sibling folder, then rename it to ``final``.

    If another process completed ``final`` meanwhile, its result is kept and ours discarded.
    """
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


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text())


# --------------------------------------------------------------------------------------------
# stage 1: scan (decode, signatures, tag counts), per shard
# --------------------------------------------------------------------------------------------
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
    size = int(data_cfg.image_size)
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
    signatures = (
        dedup.Signatures(
            exact=np.stack([np.frombuffer(s[0], np.uint8) for s in sigs]),
            hash64=np.asarray([s[1] for s in sigs], np.uint64),
            thumb=np.stack([s[2] for s in sigs]).astype(np.uint8),
            informative=np.asarray([s[3] for s in sigs], bool),
        )
        if sigs
        else dedup.Signatures.empty()
    )
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
    if num_shards == 1 and launcher == "process":
        scan_shard(*args[0], progress, opener)
        return
    if launcher in ("process", "local"):
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
            f"source={data_cfg.source}: none of the {records_in} input images could be decoded "
            f"({len(corrupt)} corrupt); check the paths in the source"
        )


def _load_records(scan_dir: Path) -> list[dict]:
    with open(scan_dir / "records.jsonl", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


# --------------------------------------------------------------------------------------------
# stage 2: vocabulary and labels
# --------------------------------------------------------------------------------------------
def _build_vocab(data_cfg: Any, scan_dir: Path, out: Path, progress: bool) -> None:
    rows = _load_records(scan_dir)
    counts = Counter(_read_json(scan_dir / "tag_counts.json"))
    category_names = hashtags.category_name_drops(
        data_cfg, (r["tags"] for r in rows), (r["category"] for r in rows)
    )
    vocab, report = hashtags.build_vocabulary_from_config(
        counts, len(rows), data_cfg, category_names=category_names
    )
    if len(vocab) == 0:
        raise UserInputError(
            f"the vocabulary is empty (data.vocab={data_cfg.vocab}, data.min_count="
            f"{data_cfg.min_count}, data.max_tag_share={data_cfg.max_tag_share}); see "
            f"{out.name}/vocab_report.json for what was dropped, and relax those settings"
        )
    tags = (r["tags"] for r in tqdm(rows, desc="labels", disable=not progress, unit="img"))
    labels, unlabeled = hashtags.label_all(vocab, tags)
    lengths = np.fromiter((len(x) for x in labels), np.int64, count=len(labels))
    flat = np.fromiter((i for x in labels for i in x), np.int32, count=int(lengths.sum()))
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    with open(out / "labels.npz", "wb") as fh:
        np.savez(fh, flat=flat, offsets=offsets)
    vocab.save(out / "vocab.tsv")
    _write_json(out / "vocab_report.json", report)
    _write_json(
        out / "stage.json",
        {"vocab_size": len(vocab), "unlabeled": unlabeled, "category_names": category_names},
    )


def _load_labels(vocab_dir: Path) -> list[np.ndarray]:
    with np.load(vocab_dir / "labels.npz") as z:
        flat, offsets = z["flat"], z["offsets"]
    return [flat[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]


# --------------------------------------------------------------------------------------------
# stage 3: dedup against evaluation images
# --------------------------------------------------------------------------------------------
def dedup_targets(data_cfg: Any) -> list[str]:
    """Evaluation sets to deduplicate against: ``data.dedup_targets`` when the schema has it and
    it is non-empty (target names, or folders of images), else the source's defaults."""
    configured = list(data_cfg.dedup_targets)
    if configured:
        return configured
    defaults = list(DEFAULT_DEDUP_TARGETS.get(data_cfg.source, ()))
    if not data_cfg.holdout_categories:  # no held-out folders: that target does not exist
        defaults = [t for t in defaults if t != "openclipart_categories"]
    return defaults


def _folder_images(folder: Path) -> tuple[list[str], list[np.ndarray]]:
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    ids, images = [], []
    for p in files:
        rec = TaggedImage(f"{folder.name}:{p.relative_to(folder)}", (), path=str(p))
        try:
            images.append(load_rgb(rec))
        except CorruptImage:
            continue
        ids.append(rec.source_id)
    return ids, images


def _eval_images(data_cfg: Any, seed: int, targets: Sequence[str]):
    """Yield (eval id, rgb) over every image (train and val splits) of every target."""
    for target in targets:
        folder = Path(target).expanduser()
        if folder.is_dir():
            ids, images = _folder_images(folder)
            yield from zip(ids, images)
            continue
        ds = sources.load_target(
            target,
            root="",
            image_size=int(data_cfg.image_size),
            seed=seed,
            cache_dir=data_cfg.cache_dir,
            # the same world / held-out split as the pretraining corpus
            holdout_fraction=float(data_cfg.holdout_fraction),
            holdout_categories=tuple(data_cfg.holdout_categories),
            synthetic_concepts=int(data_cfg.synthetic_concepts),
            zipf_exponent=float(data_cfg.zipf_exponent),
        )
        for split_name, split in (("train", ds.train), ("val", ds.val)):
            for i in range(len(split)):
                rgb, label = split[i]
                yield f"{target}:{split_name}:{i}:{ds.classes[label]}", rgb


def _build_dedup(data_cfg: Any, seed: int, scan_dir: Path, out: Path, progress: bool) -> None:
    rows = _load_records(scan_dir)
    targets = dedup_targets(data_cfg) if data_cfg.dedup else []
    train = dedup.Signatures.load(scan_dir / "signatures.npz")
    eval_ids: list[str] = []
    eval_sigs: list[tuple] = []
    bar = tqdm(desc="dedup: eval images", disable=not progress, unit="img")
    for eid, rgb in _eval_images(data_cfg, seed, targets):
        eval_ids.append(eid)
        eval_sigs.append(dedup.signature(rgb))
        bar.update()
    bar.close()
    evals = (
        dedup.Signatures(
            exact=np.stack([np.frombuffer(s[0], np.uint8) for s in eval_sigs]),
            hash64=np.asarray([s[1] for s in eval_sigs], np.uint64),
            thumb=np.stack([s[2] for s in eval_sigs]).astype(np.uint8),
            informative=np.asarray([s[3] for s in eval_sigs], bool),
        )
        if eval_sigs
        else dedup.Signatures.empty()
    )
    matches = dedup.find_near_duplicates(train, evals, hamming=int(data_cfg.dedup_hamming))
    report = dedup.dedup_report(
        matches,
        train_ids=[r["id"] for r in rows],
        train_categories=[r["category"] for r in rows],
        eval_ids=eval_ids,
        hamming=int(data_cfg.dedup_hamming),
        max_thumb_mad=dedup.MAX_THUMB_MAD,
        targets=targets,
    )
    report["enabled"] = bool(data_cfg.dedup)
    np.save(out / "removed.npy", matches.train)
    _write_json(out / "dedup_report.json", report)
    _write_json(out / "stage.json", {"removed": len(matches), "num_eval": len(eval_ids)})


# --------------------------------------------------------------------------------------------
# stage 4: subset, split, write
# --------------------------------------------------------------------------------------------
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
        rgb = load_rgb(rec, size=int(self.data_cfg.image_size))
        return rgb, self.labels[i], self.sample_ids[i]


def _dpkg_version(package: str) -> str | None:
    try:
        out = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", package],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def data_versions(data_cfg: Any) -> dict:
    """What decodes, renders, hashes and writes the data, beyond provenance's RUN_PACKAGES."""
    dists = ("pillow", "imagehash", "resvg-py", "opencv-python", "numba")
    versions: dict[str, Any] = package_versions(dists)
    del versions["python"]  # provenance records it
    if data_cfg.source == "openclipart":
        versions["openclipart-svg"] = _dpkg_version("openclipart-svg")
    return versions


def _build_prepared(
    data_cfg: Any,
    seed: int,
    dirs: dict[str, Path],
    stages: dict[str, dict],
    out: Path,
    progress: bool,
    launcher: str = "process",
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
    chosen = [pool[j] for j in subsets.scale_subset(pool_ids, float(data_cfg.scale), seed)]
    train_idx, val_idx = subsets.train_val_split(
        [rows[k]["id"] for k in chosen], float(data_cfg.val_fraction), seed
    )
    train_rows = [chosen[j] for j in train_idx]
    val_rows = [chosen[j] for j in val_idx]
    if not train_rows:
        raise UserInputError(
            f"data.scale={data_cfg.scale} leaves no training images ({len(chosen)} chosen, all "
            f"in validation); use a larger scale or a smaller data.val_fraction"
        )
    ordered = train_rows + val_rows  # sample_id = row in ids.txt
    (out / "ids.txt").write_text("".join(rows[k]["id"] + "\n" for k in ordered))
    shutil.copyfile(vocab_dir / "vocab.tsv", out / "vocab.tsv")
    shutil.copyfile(vocab_dir / "vocab_report.json", out / "vocab_report.json")
    shutil.copyfile(dedup_dir / "dedup_report.json", out / "dedup_report.json")

    width = int(data_cfg.max_labels)
    per_shard = int(data_cfg.shard_size) or len(train_rows)
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
    manifest = {
        "train": [
            shards.manifest_entry(records[name]) for name, _, _ in writes if name != "val.beton"
        ],
        "val": (
            shards.manifest_entry(records["val.beton"]) if val_rows else {"file": "", "count": 0}
        ),
        "num_train": len(train_rows),
        "max_labels": width,
        "vocab_size": len(vocab),
        "vocab_sha256": vocab.sha256,
        "hashtag_counts": [int(c) for c in hashtag_counts],
        "config": {**dataclasses.asdict(data_cfg), "seed": seed},
        # commit, dirty flag, command line; versions of the run's and the data's libraries
        "provenance": provenance(extra_versions=data_versions(data_cfg)),
        "stats": stats,
    }
    _write_json(out / "manifest.json", manifest)  # last: the folder is renamed after this


# --------------------------------------------------------------------------------------------
# the chain
# --------------------------------------------------------------------------------------------
def prepared_dir(data_cfg: DataConfig, seed: int) -> Path:
    """Where ``ensure_prepared`` puts (or finds) the prepared data for this config and seed."""
    return _plan(data_cfg, seed)["final"]


def _plan(data_cfg: Any, seed: int) -> dict:
    root = Path(data_cfg.cache_dir).expanduser() / "prepared"
    scan_fields = SCAN_FIELDS + (WEBDATASET_FIELDS if data_cfg.source == "webdataset" else ())
    scan_key = stage_key(data_cfg, scan_fields, _source_fingerprint(data_cfg))
    vocab_key = stage_key(data_cfg, VOCAB_FIELDS, scan_key, hashtags.CATEGORY_NAME_RULE)
    dedup_key = stage_key(data_cfg, DEDUP_FIELDS, scan_key, seed, dedup.MAX_THUMB_MAD)
    final_key = stage_key(data_cfg, WRITE_FIELDS, vocab_key, dedup_key, seed)
    return {
        "scan": root / "stages" / f"scan-{scan_key}",
        "vocab": root / "stages" / f"vocab-{vocab_key}",
        "dedup": root / "stages" / f"dedup-{dedup_key}",
        "final": root / f"{data_cfg.source}-{final_key}",
    }


def _check(data_cfg: Any, num_shards: int, launcher: str) -> None:
    if data_cfg.source not in DEFAULT_DEDUP_TARGETS:
        raise UserInputError(
            f"data.source={data_cfg.source!r} is not known; use one of "
            f"{', '.join(DEFAULT_DEDUP_TARGETS)}"
        )
    if launcher not in LAUNCHERS:
        raise UserInputError(
            f"launcher {launcher!r} is not known; use one of {', '.join(LAUNCHERS)}"
        )
    if num_shards < 1:
        raise UserInputError(f"--num-shards={num_shards} must be >= 1")
    if int(data_cfg.dedup_hamming) < 0 or int(data_cfg.dedup_hamming) > 64:
        raise UserInputError(f"data.dedup_hamming={data_cfg.dedup_hamming} must be within 0..64")


def ensure_prepared(
    data_cfg: DataConfig,
    seed: int,
    progress: bool = True,
    *,
    num_shards: int | None = None,
    launcher: str = "process",
    launcher_options: dict | None = None,
    summary: bool | None = None,
) -> Path:
    """The prepared folder for ``data_cfg`` and ``seed``, building the stages that are missing.

    ``num_shards`` splits the scan (decode, hash, count tags) into that many source shards;
    ``None`` = one per CPU core (at most 8) in a local process pool. ``launcher``: ``process``
    (single machine), ``local`` (submitit LocalExecutor) or ``slurm`` (a submitit job array;
    ``launcher_options``: partition, timeout_min, cpus_per_task, array_parallelism).
    The shard count does not change any output, so it is not part of any key. ``summary``
    (default: ``progress``) prints :func:`format_summary` to stderr after a build.
    """
    if num_shards is None:
        num_shards = min(8, os.cpu_count() or 1)
    _check(data_cfg, num_shards, launcher)
    options = dict(launcher_options or {})
    plan = _plan(data_cfg, seed)
    final = plan["final"]
    if (final / "manifest.json").is_file():
        return final
    stages: dict[str, dict] = {}

    def stage(name: str, build: Callable[[Path], None]) -> Path:
        path = plan[name]
        reused = path.is_dir()
        start = time.perf_counter()
        if not reused:
            _build_atomically(path, build)
        seconds = round(time.perf_counter() - start, 3)
        stages[name] = {"key": path.name, "reused": reused, "seconds": seconds}
        _log(path.parent.parent / "stage_log.jsonl", name, path.name, reused, seconds)
        return path

    scan_dir = stage(
        "scan", lambda out: build_scan_stage(data_cfg, out, num_shards, launcher, progress, options)
    )
    stage("vocab", lambda out: _build_vocab(data_cfg, scan_dir, out, progress))
    stage("dedup", lambda out: _build_dedup(data_cfg, seed, scan_dir, out, progress))
    stages["write"] = {"key": final.name, "reused": False, "seconds": 0.0}
    _build_atomically(
        final,
        lambda out: _build_prepared(data_cfg, seed, plan, stages, out, progress, launcher, options),
    )
    _log(final.parent / "stage_log.jsonl", "write", final.name, False, stages["write"]["seconds"])
    if progress if summary is None else summary:
        print(format_summary(final), file=sys.stderr)
    return final


def _log(path: Path, stage: str, key: str, reused: bool, seconds: float) -> None:
    """Append one line per stage run or reuse (a human-readable history of the cache)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "stage": stage, "key": key}
    line.update(reused=reused, seconds=seconds, pid=os.getpid())
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(line) + "\n")


def format_summary(prepared: Path) -> str:
    """Images in, kept, deduplicated, corrupt, unlabeled, time per stage (from manifest.json)."""
    manifest = _read_json(Path(prepared) / "manifest.json")
    s = manifest["stats"]
    lines = [
        f"prepared: {prepared}",
        f"  images in     {s['images_in']:>10,}",
        f"  corrupt       {s['corrupt']:>10,}",
        f"  unlabeled     {s['unlabeled']:>10,}",
        f"  deduplicated  {s['deduplicated']:>10,}  (of which labelled: {s['deduplicated_labelled']:,})",
        f"  kept          {s['kept']:>10,}  (data.scale={manifest['config']['scale']})",
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
