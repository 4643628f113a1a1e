"""data.source.name=webdataset: img2dataset-layout tars written with the webdataset package itself
(real JPEGs, tags in .json lists and strings, captions in .txt and .json, one corrupt member,
one sample without an image) prepare through the shipped example config and pretrain."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from datamodules.errors import UserInputError
from datamodules.sources import open_source
from datamodules.sources.base import CorruptImage, load_rgb
from experiments.config import load_config
from tests.ffcv_pretrain import pretrain_in_subprocess

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "configs" / "data" / "webdataset_example.yaml"
TAGS = ["cat", "dog", "tree", "car", "boat", "house"]
PER_TAR, TARS = 40, 3


def _jpeg(k: int) -> bytes:
    rng = np.random.default_rng(k)
    coarse = Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8))
    buf = io.BytesIO()
    coarse.resize((20, 24), Image.Resampling.BICUBIC).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _tags(k: int) -> list[str]:
    return [TAGS[k % 6], TAGS[(k // 6) % 6]] if k % 6 != (k // 6) % 6 else [TAGS[k % 6]]


def write_tars(folder: Path) -> dict:
    """Three tars; sample 5 has a corrupt JPEG, sample 7 no image; tags come as a list (even
    keys), an 'a|b' string (keys % 4 == 1) or a caption's hashtags in .txt (the rest)."""
    import webdataset as wds

    folder.mkdir(parents=True, exist_ok=True)
    expected = {}
    for t in range(TARS):
        with wds.TarWriter(str(folder / f"{t:05d}.tar")) as sink:
            for i in range(PER_TAR):
                k = t * PER_TAR + i
                key = f"{k:09d}"
                sample = {"__key__": key}
                if k != 7:
                    sample["jpg"] = _jpeg(k)[:150] if k == 5 else _jpeg(k)
                tags = _tags(k)
                if k % 2 == 0:
                    sample["json"] = json.dumps({"tags": tags, "url": "x", "width": 20}).encode()
                elif k % 4 == 1:
                    sample["json"] = json.dumps({"tags": "|".join(tags)}).encode()
                else:
                    sample["txt"] = ("a photo " + " ".join(f"#{x}" for x in tags)).encode()
                sink.write(sample)
                expected[f"webdataset:{t:05d}/{key}"] = sorted(tags)
    return expected


@pytest.fixture(scope="module")
def tars(tmp_path_factory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("wds")
    return folder, write_tars(folder)


def _cfg(folder: Path, cache: Path, *over: str):
    return load_config(
        str(EXAMPLE),
        [
            f"data.source.webdataset={folder}/{{00000..{TARS - 1:05d}}}.tar",
            f"data.cache_dir={cache}",
            "data.source.image_size=16",
            "data.vocab.name=raw",
            "data.vocab.min_count=1",
            "data.vocab.max_tag_share=0.0",
            "data.write.val_fraction=0.2",
            "data.write.shard_size=40",
            *over,
        ],
    )


def test_records_tags_and_tar_sharding(tars):
    folder, expected = tars
    cfg = _cfg(folder, folder / "cache")
    shards = [open_source(cfg.data, s, 2) for s in range(2)]
    tars_of = [{r.source_id.split(":")[1].split("/")[0] for r in recs} for recs in shards]
    assert tars_of == [{"00000", "00002"}, {"00001"}]  # whole tars per scan shard
    records = {r.source_id: r for recs in shards for r in recs}
    assert len(records) == TARS * PER_TAR
    assert {k: sorted(r.tags) for k, r in records.items()} == expected
    good = records["webdataset:00000/000000004"]
    assert load_rgb(good).shape == (24, 20, 3)
    with pytest.raises(CorruptImage, match="cannot decode"):
        load_rgb(records["webdataset:00000/000000005"])
    with pytest.raises(CorruptImage):
        load_rgb(records["webdataset:00000/000000007"])


def test_bad_specs_are_one_line_errors(tars, tmp_path):
    folder, _ = tars
    with pytest.raises(UserInputError, match="1 of 3 tar files not found"):
        open_source(
            _cfg(folder, tmp_path, f"data.source.webdataset={folder}/{{00001..00003}}.tar").data
        )
    with pytest.raises(UserInputError, match="needs data.source.webdataset"):
        open_source(_cfg(folder, tmp_path, "data.source.webdataset=").data)


@pytest.mark.slow
def test_tars_prepare_in_parallel_and_pretrain(tars, tmp_path):
    from datamodules.prepare import ensure_prepared

    folder, expected = tars
    cfg = _cfg(folder, tmp_path / "cache")
    out = ensure_prepared(cfg.data, cfg.seed, progress=False, num_shards=2)
    manifest = json.loads((out / "manifest.json").read_text())
    stats = manifest["stats"]
    assert stats["images_in"] == TARS * PER_TAR
    assert stats["corrupt"] == 2
    assert sorted(c["id"] for c in stats["corrupt_ids"]) == [
        "webdataset:00000/000000005",
        "webdataset:00000/000000007",
    ]
    assert stats["train"] + stats["val"] == TARS * PER_TAR - 2
    assert len(manifest["train"]) == -(-stats["train"] // 40) >= 2
    vocab = (out / "vocab.tsv").read_text()
    assert all(tag in vocab for tag in TAGS)
    metrics = pretrain_in_subprocess(out, tmp_path, "wds", 192)
    assert metrics["status"] == "complete" and metrics["images_seen"] == 192
