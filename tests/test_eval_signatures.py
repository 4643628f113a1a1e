"""The dedup stage's per-target signature cache: a named target is hashed once per world, a
different world (seed) or folder target is hashed again, and a cached entry equals a fresh one."""

from __future__ import annotations

import numpy as np
import pytest
from tqdm import tqdm

from datamodules import dedup
from datamodules.prepare import dedup_stage
from experiments.config import DataConfig, SourceConfig


class _Target:
    def __init__(self, seed: int):
        rng = np.random.default_rng(seed)
        images = [rng.integers(0, 256, (12, 12, 3), dtype=np.uint8) for _ in range(5)]
        self.train = [(img, i % 2) for i, img in enumerate(images[:3])]
        self.val = [(img, i % 2) for i, img in enumerate(images[3:])]
        self.classes = ["a", "b"]


@pytest.fixture
def loads(monkeypatch):
    calls = []

    def load_target(name, **kwargs):
        calls.append((name, kwargs["seed"]))
        return _Target(kwargs["seed"])

    monkeypatch.setattr("datamodules.dedup_targets.sources.load_target", load_target)
    return calls


def _signatures(cfg, seed, target):
    return dedup_stage.target_signatures(cfg, seed, target, tqdm(disable=True))


def _equal(a: dedup.Signatures, b: dedup.Signatures) -> bool:
    return all(
        np.array_equal(getattr(a, f), getattr(b, f))
        for f in ("exact", "hash64", "thumb", "informative")
    )


def test_a_named_target_is_hashed_once_per_world(tmp_path, loads):
    cfg = DataConfig(cache_dir=str(tmp_path / "cache"))
    ids, first = _signatures(cfg, 0, "synthetic_in")
    assert len(ids) == 5 and ids[0] == "synthetic_in:train:0:a" and len(loads) == 1
    again_ids, again = _signatures(cfg, 0, "synthetic_in")
    assert len(loads) == 1  # from the cache: the target was not loaded again
    assert again_ids == ids and _equal(again, first)
    expected = dedup.compute_signatures(img for img, _ in _Target(0).train + _Target(0).val)
    assert _equal(first, expected)
    _signatures(cfg, 1, "synthetic_in")  # another world: its own entry
    _signatures(
        DataConfig(cache_dir=cfg.cache_dir, source=SourceConfig(image_size=32)), 0, "synthetic_in"
    )
    assert loads == [("synthetic_in", 0), ("synthetic_in", 1), ("synthetic_in", 0)]
    entries = sorted(p.name for p in (tmp_path / "cache" / "eval_signatures").iterdir())
    assert len(entries) == 3 and all(e.startswith("synthetic_in-") for e in entries)


def test_a_folder_target_is_hashed_every_time(tmp_path, loads):
    from PIL import Image

    folder = tmp_path / "mine"
    folder.mkdir()
    Image.fromarray(np.full((16, 16, 3), 200, np.uint8)).save(folder / "x.png")
    cfg = DataConfig(cache_dir=str(tmp_path / "cache"))
    ids, _ = _signatures(cfg, 0, str(folder))
    Image.fromarray(np.full((16, 16, 3), 10, np.uint8)).save(folder / "y.png")
    ids2, _ = _signatures(cfg, 0, str(folder))
    assert len(ids) == 1 and len(ids2) == 2 and not loads
    assert not (tmp_path / "cache" / "eval_signatures").exists()
