"""Which evaluation sets the pretraining corpus is deduplicated against, and their images:
``data.dedup.targets`` (target names, or folders of images) or the source's defaults."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from datamodules import sources
from datamodules.sources.base import CorruptImage, TaggedImage, load_rgb
from datamodules.sources.targets import load_target

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")

# evaluation sets each source is deduplicated against when data.dedup.targets is empty
DEFAULT_DEDUP_TARGETS = {
    "openclipart": ("openclipart_images", "openclipart_categories"),
    "synthetic": ("synthetic_in", "synthetic_fine", "synthetic_scene"),
    "manifest": (),
    "webdataset": (),
}


def dedup_targets(data_cfg: Any) -> list[str]:
    """Evaluation sets to deduplicate against: ``data.dedup.targets`` when it is non-empty
    (target names, or folders of images), else the source's defaults."""
    configured = list(data_cfg.dedup.targets)
    if configured:
        return configured
    defaults = list(DEFAULT_DEDUP_TARGETS.get(data_cfg.source.name, ()))
    if not data_cfg.source.holdout_categories:  # no held-out folders: that target does not exist
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


def target_kwargs(data_cfg: Any, seed: int) -> dict[str, Any]:
    """What decides a named target's images besides its name (``sources.load_target``'s
    arguments): the same world and held-out split as the pretraining corpus, i.e. every field
    of ``data.source`` that is a keyword of ``load_target`` (the image size, the held-out
    split, the synthetic world's settings), the seed and the cache."""
    params = inspect.signature(load_target).parameters.values()  # the real one, tests patch
    keywords = {p.name for p in params if p.kind is p.KEYWORD_ONLY}
    source = data_cfg.source
    shared = {
        f.name: _hashable(getattr(source, f.name))
        for f in dataclasses.fields(source)
        if f.name in keywords
    }
    return dict(root="", seed=seed, cache_dir=data_cfg.cache_dir, **shared)


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _eval_images(data_cfg: Any, seed: int, targets: Sequence[str]):
    """Yield (eval id, rgb) over every image (train and val splits) of every target."""
    for target in targets:
        folder = Path(target).expanduser()
        if folder.is_dir():
            ids, images = _folder_images(folder)
            yield from zip(ids, images)
            continue
        ds = sources.load_target(target, **target_kwargs(data_cfg, seed))
        for split_name, split in (("train", ds.train), ("val", ds.val)):
            for i in range(len(split)):
                rgb, label = split[i]
                yield f"{target}:{split_name}:{i}:{ds.classes[label]}", rgb
