"""OpenClipart: SVG metadata, cached rasterization, held-out split, shards and the target.

A handful of the real Debian SVGs are copied into a temporary root (same relative paths, so the
same source ids) and rasterized into a temporary cache.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from datamodules.errors import UserInputError
from datamodules.sources import load_rgb, load_target
from datamodules.sources.openclipart import (
    DEFAULT_SVG_ROOT,
    build_cache,
    cache_path,
    is_heldout,
    load_records,
    parse_svg_metadata,
    target_categories,
)

SIZE = 32
PER_CATEGORY = {"animals": 16, "food": 16, "unsorted": 4}
FRACTION = 0.9  # hold out most of the few files so the target has >= 12 per category

pytestmark = pytest.mark.skipif(
    not Path(DEFAULT_SVG_ROOT).is_dir(), reason="Debian package openclipart-svg not installed"
)


@pytest.fixture(scope="module")
def svg_dir(tmp_path_factory):
    src = Path(DEFAULT_SVG_ROOT)
    root = tmp_path_factory.mktemp("svg")
    for cat, n in PER_CATEGORY.items():
        small = sorted(p for p in (src / cat).rglob("*.svg") if p.stat().st_size < 20000)[:n]
        for p in small:
            dest = root / p.relative_to(src)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(p, dest)
    (root / "food" / "broken.svg").write_text("<svg this is not xml")
    return root


@pytest.fixture(scope="module")
def cache(svg_dir, tmp_path_factory):
    cache_dir = tmp_path_factory.mktemp("cache")
    build_cache(cache_dir, SIZE, root=svg_dir, workers=2, progress=False)
    return cache_dir


def test_parse_metadata_from_rdf_bag():
    text = (
        "<svg><metadata><dc:title>Red &amp; Apple</dc:title><dc:subject><rdf:Bag>"
        "<rdf:li>fruit</rdf:li><rdf:li> food  item </rdf:li><rdf:li></rdf:li>"
        "<rdf:li>fruit</rdf:li></rdf:Bag></dc:subject></metadata></svg>"
    )
    assert parse_svg_metadata(text) == ("Red & Apple", ("fruit", "food item"))
    assert parse_svg_metadata("<svg/>") == ("", ())


def test_cache_holds_images_tags_categories_and_failures(svg_dir, cache):
    out = cache_path(cache, SIZE)
    report = json.loads((out / "report.json").read_text())
    total = sum(PER_CATEGORY.values()) + 1
    assert report["total"] == total
    assert report["failed"] >= 1 and report["rendered"] + report["failed"] == total
    index = json.loads((out / "index.json").read_text())
    assert "food/broken" in {f["id"] for f in index["failed"]}
    recs = load_records(cache, SIZE, heldout=None, root=svg_dir, progress=False)
    assert len(recs) == report["rendered"]
    assert {r.category for r in recs} == set(PER_CATEGORY)
    topical = [r for r in recs if r.category != "unsorted"]
    assert all(r.tags for r in topical)  # every animals/food SVG here carries keywords
    assert any("animal" in r.tags for r in topical if r.category == "animals")
    rec = next(r for r in recs if r.category == "animals")
    assert rec.source_id.startswith("openclipart:animals/")
    rgb = load_rgb(rec)
    assert rgb.shape == (SIZE, SIZE, 3) and rgb.dtype == np.uint8
    assert rgb.min() < 200 and (rgb[0] == 255).all() | (rgb[:, 0] == 255).all()  # drawn on white


def test_cache_is_reused_and_resumes(svg_dir, cache):
    out = cache_path(cache, SIZE)
    png = next((out / "png").rglob("*.png"))
    stamp = png.stat().st_mtime_ns
    again = build_cache(cache, SIZE, root=svg_dir, workers=2, progress=False)
    assert len(again["records"]) == json.loads((out / "report.json").read_text())["rendered"]
    (out / "index.json").unlink()  # as if killed before finishing: PNGs stay, index rebuilt
    build_cache(cache, SIZE, root=svg_dir, workers=2, progress=False)
    assert (out / "index.json").is_file() and png.stat().st_mtime_ns == stamp
    assert not list(out.rglob("*.tmp"))


def test_heldout_split_is_stable_nested_and_partitions(svg_dir, cache):
    ids = [f"openclipart:x/{i}" for i in range(20000)]
    share = np.mean([is_heldout(i, 0.2) for i in ids])
    assert share == pytest.approx(0.2, abs=0.01)
    assert all(is_heldout(i, 0.3) for i in ids[:2000] if is_heldout(i, 0.2))  # nested
    every = load_records(cache, SIZE, heldout=None, root=svg_dir, progress=False)
    pool = load_records(cache, SIZE, heldout=False, holdout_fraction=0.5, root=svg_dir)
    held = load_records(cache, SIZE, heldout=True, holdout_fraction=0.5, root=svg_dir)
    assert {r.source_id for r in pool} | {r.source_id for r in held} == {r.source_id for r in every}
    assert not {r.source_id for r in pool} & {r.source_id for r in held}
    assert all(is_heldout(r.source_id, 0.5) for r in held)
    shards = [
        load_records(
            cache, SIZE, heldout=False, holdout_fraction=0.5, root=svg_dir, shard=k, num_shards=3
        )
        for k in range(3)
    ]
    assert sorted(r.source_id for s in shards for r in s) == sorted(r.source_id for r in pool)
    with pytest.raises(UserInputError, match="holdout_fraction"):
        load_records(cache, SIZE, holdout_fraction=1.0, root=svg_dir)


def test_target_uses_heldout_images_of_topical_categories(svg_dir, cache, monkeypatch):
    monkeypatch.setenv("OPENCLIPART_SVG_DIR", str(svg_dir))
    held = load_records(cache, SIZE, heldout=True, holdout_fraction=FRACTION, root=svg_dir)
    assert target_categories(held) == ["animals", "food"]  # unsorted is never a target class
    ds = load_target(
        "openclipart_images",
        image_size=SIZE,
        seed=0,
        cache_dir=str(cache),
        holdout_fraction=FRACTION,
    )
    assert ds.classes == ["animals", "food"]
    n_held = sum(r.category in ds.classes for r in held)
    assert len(ds.train) + len(ds.val) == n_held
    for k, cat in enumerate(ds.classes):  # stratified: 40% of each category to val
        n = sum(r.category == cat for r in held)
        assert (ds.val.labels == k).sum() == round(0.4 * n)
    img, label = ds.val[0]
    assert img.shape == (SIZE, SIZE, 3) and label in (0, 1)
    other = load_target(
        "openclipart_images",
        image_size=SIZE,
        seed=1,
        cache_dir=str(cache),
        holdout_fraction=FRACTION,
    )
    assert set(other.val.ids) != set(ds.val.ids)  # the seed reshuffles which images are val
    assert not set(ds.val.ids) & set(ds.train.ids)
    assert {Path(p).stem for p in ds.val.ids} <= {Path(r.path).stem for r in held}
    with pytest.raises(UserInputError, match="hold out more"):
        load_target(
            "openclipart_images",
            image_size=SIZE,
            seed=0,
            cache_dir=str(cache),
            holdout_fraction=0.1,
        )


def test_heldout_categories_never_enter_pretraining_and_make_their_own_target(
    svg_dir, cache, monkeypatch
):
    monkeypatch.setenv("OPENCLIPART_SVG_DIR", str(svg_dir))
    everything = load_records(cache, SIZE, heldout=None, root=svg_dir)
    pool = load_records(
        cache, SIZE, holdout_fraction=0.1, holdout_categories=["food"], root=svg_dir
    )
    assert pool and all(r.category != "food" for r in pool)
    images = load_records(
        cache, SIZE, heldout=True, holdout_fraction=0.1, holdout_categories=["food"], root=svg_dir
    )
    assert all(r.category != "food" for r in images)
    ds = load_target(
        "openclipart_categories",
        image_size=SIZE,
        seed=0,
        cache_dir=str(cache),
        holdout_categories=["animals", "food"],
    )
    assert ds.classes == ["animals", "food"]
    # every image of the held-out folders, whatever the id-hash split says
    n = sum(r.category in ("animals", "food") for r in everything)
    assert len(ds.train) + len(ds.val) == n
    with pytest.raises(UserInputError, match="unknown OpenClipart categories \\['animal'\\]"):
        load_records(cache, SIZE, holdout_categories=["animal"], root=svg_dir)
    with pytest.raises(UserInputError, match="needs data.source.holdout_categories"):
        load_target("openclipart_categories", image_size=SIZE, seed=0, cache_dir=str(cache))
