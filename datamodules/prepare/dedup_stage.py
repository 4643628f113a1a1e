"""Stage 3, dedup: the scanned images' signatures against every evaluation image of the targets
that ``datamodules.dedup_targets`` names (``removed.npy``, ``dedup_report.json``).

A named target's signatures are kept under ``<data.cache_dir>/eval_signatures/``, keyed by
everything that decides its images and by the signature's parameters: the runs of a sweep that
share a world (its scales, its sampling or noise settings) hash the same 12,000 synthetic
evaluation images once, not once per run (about 13 s of a 2-minute mini run). A folder of
images is hashed every time (its files can change under the same name)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from datamodules import dedup
from datamodules.dedup_targets import _eval_images, dedup_targets, target_kwargs
from datamodules.io import build_folder_atomically
from datamodules.prepare.cache import _read_json, _write_json, hash_key
from datamodules.prepare.scan import _load_records

EVAL_SIGNATURES_DIR = "eval_signatures"
# what a signature is (datamodules.dedup): a change in any of them makes new cache entries
SIGNATURE_PARAMETERS = {
    "exact_size": dedup.EXACT_SIZE,
    "thumb_size": dedup.THUMB_SIZE,
    "hash_size": dedup.HASH_SIZE,
    "min_pixel_std": dedup.MIN_PIXEL_STD,
}


def _hash_images(images, bar) -> tuple[list[str], dedup.Signatures]:
    ids, rows = [], []
    for eid, rgb in images:
        ids.append(eid)
        rows.append(dedup.signature(rgb))
        bar.update()
    return ids, dedup.Signatures.from_rows(rows)


def target_signatures(
    data_cfg: Any, seed: int, target: str, bar
) -> tuple[list[str], dedup.Signatures]:
    """The ids and signatures of every image of one evaluation set (cached for named targets)."""
    images = _eval_images(data_cfg, seed, [target])
    if Path(target).expanduser().is_dir():
        return _hash_images(images, bar)
    decides = {k: v for k, v in target_kwargs(data_cfg, seed).items() if k != "cache_dir"}
    key = {"target": target, **decides, "signature": SIGNATURE_PARAMETERS}
    entry = Path(data_cfg.cache_dir) / EVAL_SIGNATURES_DIR / f"{target}-{hash_key({}, key)}"
    if (entry / "ids.json").is_file():
        ids = _read_json(entry / "ids.json")
        bar.update(len(ids))
        return ids, dedup.Signatures.load(entry / "signatures.npz")
    ids, signatures = _hash_images(images, bar)

    def write(folder: Path) -> None:
        signatures.save(folder / "signatures.npz")
        _write_json(folder / "key.json", key)
        _write_json(folder / "ids.json", ids)

    build_folder_atomically(entry, write)  # whole or absent; another run's equal entry is kept
    return ids, signatures


def _build_dedup(data_cfg: Any, seed: int, scan_dir: Path, out: Path, progress: bool) -> None:
    rows = _load_records(scan_dir)
    dedup_cfg = data_cfg.dedup
    targets = dedup_targets(data_cfg) if dedup_cfg.enabled else []
    train = dedup.Signatures.load(scan_dir / "signatures.npz")
    eval_ids: list[str] = []
    parts = []
    bar = tqdm(desc="dedup: eval images", disable=not progress, unit="img")
    for target in targets:
        ids, signatures = target_signatures(data_cfg, seed, target, bar)
        eval_ids.extend(ids)
        parts.append(signatures)
    bar.close()
    evals = dedup.Signatures.concat(parts)
    matches = dedup.find_near_duplicates(train, evals, hamming=int(dedup_cfg.hamming))
    report = dedup.dedup_report(
        matches,
        train_ids=[r["id"] for r in rows],
        train_categories=[r["category"] for r in rows],
        eval_ids=eval_ids,
        hamming=int(dedup_cfg.hamming),
        max_thumb_mad=dedup.MAX_THUMB_MAD,
        targets=targets,
    )
    report["enabled"] = bool(dedup_cfg.enabled)
    np.save(out / "removed.npy", matches.train)
    _write_json(out / "dedup_report.json", report)
    _write_json(out / "stage.json", {"removed": len(matches), "num_eval": len(eval_ids)})
