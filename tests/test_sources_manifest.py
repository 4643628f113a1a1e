"""User manifests: JSONL / CSV / Parquet round trips, captions, sharding, clear errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from datamodules.errors import UserInputError
from datamodules.sources import load_rgb, open_source
from datamodules.sources.manifest import open_manifest, read_manifest
from experiments.config import DataConfig, SourceConfig

ROWS = [
    {"id": "a", "path": "img/a.png", "tags": ["Dog", "beach"], "category": "pets"},
    {"id": "b", "path": "img/b.png", "tags": ["cat"], "category": "pets"},
    {"id": "c", "path": "img/c.png", "tags": [], "category": "other"},
]


@pytest.fixture()
def folder(tmp_path):
    (tmp_path / "img").mkdir()
    for k, row in enumerate(ROWS):
        Image.fromarray(np.full((10, 12, 3), 40 * k, np.uint8)).save(tmp_path / row["path"])
    return tmp_path


def _write(folder, fmt: str) -> str:
    if fmt == "jsonl":
        path = folder / "m.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    elif fmt == "csv":
        path = folder / "m.csv"
        df = pd.DataFrame(ROWS).assign(tags=["Dog|beach", "cat", ""])
        df.to_csv(path, index=False)
    else:
        path = folder / "m.parquet"
        pd.DataFrame(ROWS).to_parquet(path)
    return str(path)


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_round_trip(folder, fmt):
    recs = read_manifest(_write(folder, fmt))
    assert [r.source_id for r in recs] == ["manifest:a", "manifest:b", "manifest:c"]
    assert [r.tags for r in recs] == [("Dog", "beach"), ("cat",), ()]
    assert [r.category for r in recs] == ["pets", "pets", "other"]
    assert recs[1].path == str(folder / "img" / "b.png")  # relative to the manifest's folder
    assert load_rgb(recs[2]).tolist() == np.full((10, 12, 3), 80, np.uint8).tolist()


def test_captions_comma_tags_absolute_paths_and_default_ids(folder):
    path = folder / "m.csv"
    absolute = str(folder / "img" / "a.png")
    pd.DataFrame(
        {
            "path": [absolute, "img/b.png"],
            "tags": ["sunset, sea", ""],
            "caption": ["At the #Beach with #dogs", "no tags here"],
        }
    ).to_csv(path, index=False)
    recs = read_manifest(path)
    assert recs[0].tags == ("sunset", "sea", "beach", "dogs")
    assert recs[0].path == absolute and recs[0].source_id == "manifest:" + absolute
    assert recs[1].tags == () and recs[1].source_id == "manifest:img/b.png"
    assert recs[0].category is None


def test_open_source_shards_are_disjoint_and_cover(folder):
    rows = [{"path": f"img/{i}.png", "tags": ["x"]} for i in range(50)]
    path = folder / "big.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = DataConfig(source=SourceConfig(name="manifest", manifest=str(path)))
    everything = [r.source_id for r in open_source(cfg)]
    shards = [[r.source_id for r in open_manifest(path, k, 4)] for k in range(4)]
    assert sorted(sum(shards, [])) == sorted(everything) and len(everything) == 50
    assert all(len(s) > 0 for s in shards)


def test_errors_say_what_to_fix(folder):
    with pytest.raises(UserInputError, match="not found"):
        read_manifest(folder / "missing.jsonl")
    (folder / "m.txt").write_text("path,tags\n")
    with pytest.raises(UserInputError, match=r"unknown format '\.txt'.*\.csv"):
        read_manifest(folder / "m.txt")
    pd.DataFrame({"file": ["a.png"], "labels": ["x"]}).to_csv(folder / "cols.csv", index=False)
    with pytest.raises(UserInputError, match=r"found columns \[file, labels\]; expected 'path'"):
        read_manifest(folder / "cols.csv")
    (folder / "bad.jsonl").write_text('{"path": "a.png", "tags": ["x"]}\n{oops\n')
    with pytest.raises(UserInputError, match="line 2"):
        read_manifest(folder / "bad.jsonl")
    (folder / "dup.jsonl").write_text(
        '{"path": "a.png", "tags": []}\n{"path": "a.png", "tags": []}\n'
    )
    with pytest.raises(UserInputError, match="duplicate id"):
        read_manifest(folder / "dup.jsonl")
    with pytest.raises(UserInputError, match="data.source.manifest"):
        open_source(DataConfig(source=SourceConfig(name="manifest", manifest="")))
    with pytest.raises(UserInputError, match="unknown data.source.name"):
        open_source(DataConfig(source=SourceConfig(name="instagram")))


def test_example_manifest_config_loads():
    from experiments.config import REPO_ROOT, load_config

    cfg = load_config(REPO_ROOT / "configs" / "data" / "manifest_example.yaml")
    recs = read_manifest(REPO_ROOT / cfg.data.source.manifest)
    assert [r.tags for r in recs] == [
        ("red", "square", "sunny"),
        ("green", "square"),
        ("blue", "square", "photooftheday"),
    ]
    assert all(load_rgb(r).shape == (16, 16, 3) for r in recs)
