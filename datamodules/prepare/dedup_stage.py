"""Stage 3, dedup: the scanned images' signatures against every evaluation image of the targets
that ``datamodules.dedup_targets`` names (``removed.npy``, ``dedup_report.json``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from datamodules import dedup
from datamodules.dedup_targets import _eval_images, dedup_targets
from datamodules.prepare.cache import _write_json
from datamodules.prepare.scan import _load_records


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
    evals = dedup.Signatures.from_rows(eval_sigs)
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
