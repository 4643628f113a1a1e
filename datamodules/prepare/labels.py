"""Stage 2, vocabulary: the merged tag counts -> ``build_vocabulary`` -> label ids per image
(``labels.npz``, ``vocab.tsv``, ``vocab_report.json``)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from datamodules import hashtags
from datamodules.errors import UserInputError
from datamodules.prepare.cache import _read_json, _write_json
from datamodules.prepare.scan import _load_records


def _build_vocab(data_cfg: Any, scan_dir: Path, out: Path, progress: bool) -> None:
    rows = _load_records(scan_dir)
    counts = Counter(_read_json(scan_dir / "tag_counts.json"))
    vocab_cfg = data_cfg.vocab
    category_names = hashtags.category_name_drops(
        data_cfg, (r["tags"] for r in rows), (r["category"] for r in rows)
    )
    vocab, report = hashtags.build_vocabulary_from_config(
        counts, len(rows), vocab_cfg, category_names=category_names
    )
    if len(vocab) == 0:
        raise UserInputError(
            f"the vocabulary is empty (data.vocab.name={vocab_cfg.name}, data.vocab.min_count="
            f"{vocab_cfg.min_count}, data.vocab.max_tag_share={vocab_cfg.max_tag_share}); see "
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
