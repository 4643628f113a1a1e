"""The prepare chain end to end on ~20 tiny images from a manifest, with broken inputs mixed in."""

from __future__ import annotations

import io
import json
import platform
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from datamodules import prepare
from datamodules.errors import UserInputError
from datamodules.hashtags import Vocabulary
from datamodules.io import build_folder_atomically
from datamodules.provenance import git_state
from datamodules.sources.base import TaggedImage
from experiments.config import DataConfig
from tests.data_configs import data_config

TAG_POOL = ["cat", "dog", "tree", "car", "boat", "house"]
NUM_GOOD = 18


def fake_open_source(data_cfg, shard: int = 0, num_shards: int = 1) -> list[TaggedImage]:
    """A manifest reader following the source contract: one JSON object per line with ``id``,
    ``path``, ``tags``, ``category``; shard k holds lines k, k+n, ... (module-level: the
    writer's fresh process and submitit jobs import it by name)."""
    lines = Path(data_cfg.source.manifest).read_text().splitlines()
    out = []
    for i, line in enumerate(lines):
        if i % num_shards != shard:
            continue
        row = json.loads(line)
        out.append(
            TaggedImage(row["id"], tuple(row["tags"]), row.get("category"), path=row["path"])
        )
    return out


def _texture(rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """A natural-ish image: a smooth random colour field, a random ellipse and mild noise."""
    coarse = Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8))
    img = np.asarray(coarse.resize((size, size), Image.Resampling.BICUBIC)).astype(np.float32)
    yy, xx = np.mgrid[:size, :size]
    cy, cx, r = rng.uniform(8, 24, 3)
    img[((yy - cy) ** 2 + (xx - cx) ** 2) < r**2 / 2] = rng.uniform(0, 255, 3)
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _jpeg_bytes(rgb: np.ndarray, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict:
    """18 good images (one tagged only with a stop tag), 4 broken files, a manifest, and an
    evaluation folder holding a resized and recompressed copy of good image 3."""
    root = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    rows, images = [], []
    for i in range(NUM_GOOD):
        rgb = _texture(rng)
        images.append(rgb)
        path = root / (f"img{i:02d}.jpg" if i % 2 else f"img{i:02d}.png")
        if i % 2:
            path.write_bytes(_jpeg_bytes(rgb))
        else:
            Image.fromarray(rgb).save(path)
        tags = list(rng.choice(TAG_POOL, size=int(rng.integers(1, 3)), replace=False))
        if i == 17:
            tags = ["photooftheday"]  # a default stop tag: this image ends up unlabeled
        rows.append({"id": f"m:img{i:02d}", "path": str(path), "tags": tags, "category": "x"})
    good_jpeg = _jpeg_bytes(images[1])
    broken = {
        "corrupt.jpg": good_jpeg[:200] + bytes(rng.integers(0, 256, 600, dtype=np.uint8)),
        "truncated.jpg": good_jpeg[: len(good_jpeg) // 2],
        "notes.jpg": b"this is a text file, not an image\n",
        "empty.png": b"",
    }
    for name, data in broken.items():
        (root / name).write_bytes(data)
        rows.append({"id": f"m:{name}", "path": str(root / name), "tags": ["cat"]})
    manifest = root / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    evals = root / "eval"
    evals.mkdir()
    small = Image.fromarray(images[3]).resize((24, 24), Image.Resampling.BILINEAR)
    small.save(evals / "copy_of_3.jpg", quality=75)
    Image.fromarray(_texture(np.random.default_rng(99))).save(evals / "other.png")
    return {"root": root, "manifest": manifest, "eval": evals, "rows": rows}


def _cfg(corpus: dict, cache: Path, **over: dict) -> DataConfig:
    base = {
        "source": {"name": "manifest", "manifest": str(corpus["manifest"]), "image_size": 32},
        "cache_dir": str(cache),
        "vocab": {"name": "raw", "min_count": 1, "max_tag_share": 0.0},
        "write": {"max_labels": 2, "val_fraction": 0.25},
        "dedup": {"targets": [str(corpus["eval"])]},
    }
    return data_config(base, over)


@pytest.fixture
def fake_source(monkeypatch):
    monkeypatch.setattr(prepare.sources, "open_source", fake_open_source, raising=False)


@pytest.mark.slow
def test_end_to_end_with_broken_inputs_and_stage_reuse(corpus, tmp_path, fake_source):
    from datamodules.ffcv_store import read_labels

    cfg = _cfg(corpus, tmp_path)
    out = prepare.ensure_prepared(cfg, seed=0, progress=False, num_shards=1)
    assert out.parent == tmp_path / "prepared" and out.name.startswith("manifest-")
    m = json.loads((out / "manifest.json").read_text())

    # --- the manifest contract
    assert set(m) >= {
        "train", "val", "num_train", "max_labels", "vocab_size", "vocab_sha256",
        "hashtag_counts", "config", "provenance", "stats",
    }  # fmt: skip
    versions = m["provenance"]["versions"]
    assert versions["ffcv"] == metadata.version("ffcv")
    assert versions["numba"] == metadata.version("numba")
    assert versions["python"] == platform.python_version()
    assert m["provenance"]["git"]["commit"] == git_state()["commit"]
    for name in ("vocab.tsv", "vocab_report.json", "dedup_report.json", "ids.txt"):
        assert (out / name).is_file()
    vocab = Vocabulary.load(out / "vocab.tsv")
    assert m["vocab_size"] == len(vocab) == len(TAG_POOL)
    assert m["vocab_sha256"] == vocab.sha256
    assert (
        m["max_labels"] == 2 and m["config"]["write"]["scale"] == 1.0 and m["config"]["seed"] == 0
    )

    # --- counts: 22 inputs, 4 broken, 1 unlabeled, 1 near-duplicate of the eval folder
    s = m["stats"]
    assert s["images_in"] == NUM_GOOD + 4
    assert s["corrupt"] == 4
    assert sorted(c["id"] for c in s["corrupt_ids"]) == [
        "m:corrupt.jpg", "m:empty.png", "m:notes.jpg", "m:truncated.jpg",
    ]  # fmt: skip
    assert s["unlabeled"] == 1
    assert s["deduplicated"] == 1
    report = json.loads((out / "dedup_report.json").read_text())
    assert [(r["train_id"], r["eval_id"]) for r in report["removed"]] == [
        ("m:img03", "eval:copy_of_3.jpg")
    ]
    assert s["train"] + s["val"] == NUM_GOOD - 2 == s["kept"]
    assert m["num_train"] == s["train"] == sum(t["count"] for t in m["train"])
    assert (m["val"]["file"], m["val"]["count"]) == ("val.beton", s["val"]) and s["val"] > 0
    assert m["val"]["bytes"] == (out / "val.beton").stat().st_size

    # --- the written rows: sample ids index ids.txt, labels are the vocabulary's (truncated)
    ids = (out / "ids.txt").read_text().split()
    assert len(ids) == s["train"] + s["val"] and "m:img03" not in ids and "m:img17" not in ids
    tags = {r["id"]: r["tags"] for r in corpus["rows"]}
    train_labels = read_labels(out / m["train"][0]["file"])
    val_labels = read_labels(out / "val.beton")
    for row, labels in enumerate(np.concatenate([train_labels, val_labels])):
        expected = vocab.label(tags[ids[row]])[:2]
        assert labels.tolist() == expected + [-1] * (2 - len(expected))
    counts = np.zeros(len(vocab), int)
    for labels in train_labels:
        counts[labels[labels >= 0]] += 1
    assert m["hashtag_counts"] == counts.tolist()
    first_stages = s["stages"]
    assert not any(first_stages[k]["reused"] for k in ("scan", "vocab", "dedup"))

    # --- a second call with another scale reuses scan, vocabulary and dedup
    vocab_dir = tmp_path / "prepared" / "stages" / first_stages["vocab"]["key"]
    mtime = (vocab_dir / "stage.json").stat().st_mtime_ns
    half = prepare.ensure_prepared(
        _cfg(corpus, tmp_path, write={"scale": 0.5}), 0, False, num_shards=1
    )
    assert half != out
    m2 = json.loads((half / "manifest.json").read_text())
    for stage in ("scan", "vocab", "dedup"):
        assert m2["stats"]["stages"][stage] == {
            **first_stages[stage],
            "reused": True,
            "seconds": 0.0,
        } | {"seconds": m2["stats"]["stages"][stage]["seconds"]}
    assert (vocab_dir / "stage.json").stat().st_mtime_ns == mtime
    assert set((half / "ids.txt").read_text().split()) < set(ids)  # nested subsets
    log = [
        json.loads(x) for x in (tmp_path / "prepared" / "stage_log.jsonl").read_text().splitlines()
    ]
    assert [(x["stage"], x["reused"]) for x in log] == [
        ("scan", False), ("vocab", False), ("dedup", False), ("write", False),
        ("scan", True), ("vocab", True), ("dedup", True), ("write", False),
    ]  # fmt: skip
    # --- and the same config again returns the same folder without building anything
    assert prepare.ensure_prepared(cfg, 0, False, num_shards=1) == out
    assert len((tmp_path / "prepared" / "stage_log.jsonl").read_text().splitlines()) == 8
    assert not list((tmp_path / "prepared").glob(".*tmp*"))  # no leftovers
    assert "corrupt: m:" in prepare.format_summary(out)


def test_stage_keys_follow_only_their_fields(corpus, tmp_path):
    a = prepare._plan(_cfg(corpus, tmp_path), 0)
    b = prepare._plan(_cfg(corpus, tmp_path, write={"scale": 0.1, "val_fraction": 0.1}), 0)
    c = prepare._plan(_cfg(corpus, tmp_path, vocab={"name": "in1k"}), 0)
    d = prepare._plan(_cfg(corpus, tmp_path, dedup={"hamming": 6}), 0)
    assert a["scan"] == b["scan"] == c["scan"] == d["scan"]
    assert a["vocab"] == b["vocab"] == d["vocab"] != c["vocab"]
    assert a["dedup"] == b["dedup"] == c["dedup"] != d["dedup"]
    assert len({a["final"], b["final"], c["final"], d["final"]}) == 4
    assert prepare._plan(_cfg(corpus, tmp_path), 1)["scan"] == a["scan"]  # seed: not the scan


def test_failed_build_leaves_nothing_that_looks_complete(tmp_path):
    final = tmp_path / "stage-x"

    def boom(out: Path):
        (out / "half.txt").write_text("partial")
        raise RuntimeError("crash mid-stage")

    with pytest.raises(RuntimeError):
        build_folder_atomically(final, boom)
    assert not final.exists() and list(tmp_path.iterdir()) == []


def test_scan_is_the_same_in_process_and_as_a_submitit_array(corpus, tmp_path, fake_source):
    cfg = _cfg(corpus, tmp_path)
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    prepare.build_scan_stage(cfg, one, 1, "local", False, {})
    prepare.build_scan_stage(cfg, two, 2, "submitit-local", False, {"timeout_min": 5})
    for name in ("corrupt.json", "tag_counts.json"):
        assert (one / name).read_text() == (two / name).read_text()

    def records(folder: Path) -> list[dict]:  # shard and index within it differ, nothing else
        rows = [json.loads(x) for x in (folder / "records.jsonl").read_text().splitlines()]
        return [{k: v for k, v in r.items() if k not in ("shard", "index")} for r in rows]

    assert records(one) == records(two) and len(records(one)) == NUM_GOOD
    a = np.load(one / "signatures.npz")
    b = np.load(two / "signatures.npz")
    for key in ("exact", "hash64", "thumb", "informative"):
        np.testing.assert_array_equal(a[key], b[key])
    assert json.loads((two / "stage.json").read_text())["num_shards"] == 2


def test_bad_inputs_say_what_to_fix(corpus, tmp_path):
    with pytest.raises(UserInputError, match="data.source.manifest"):
        prepare.ensure_prepared(
            _cfg(corpus, tmp_path, source={"manifest": str(tmp_path / "nope.jsonl")}), 0
        )
    with pytest.raises(UserInputError, match="launcher"):
        prepare.ensure_prepared(_cfg(corpus, tmp_path), 0, launcher="pbs")
    with pytest.raises(UserInputError, match="data.source.name"):
        prepare.ensure_prepared(_cfg(corpus, tmp_path, source={"name": "flickr"}), 0)
