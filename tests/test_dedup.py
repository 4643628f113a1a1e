"""Near-duplicate detection on real OpenClipart rasters: copies caught, distinct images kept."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from datamodules import dedup

SVG_ROOT = Path("/usr/share/openclipart/svg")
SVGS = [
    "animals/bugs/coccinella_rollandin_arc_01.svg",  # ladybug (phash misses its resized copy)
    "animals/bison_leif_lodahl_01.svg",
    "animals/bat_orlando_karam_.svg",
    "transportation/airplane.svg",
    "signs_and_symbols/flags/europe/albania.svg",
    "signs_and_symbols/flags/europe/andorra.svg",
]


def _raster(rel: str, size: int = 64) -> np.ndarray:
    from datamodules.sources.openclipart import rasterize_svg

    im = Image.fromarray(rasterize_svg(SVG_ROOT / rel, 2 * size))
    im.thumbnail((size, size), Image.Resampling.LANCZOS)
    return np.asarray(im.convert("RGB"))


def _resized_jpeg(rgb: np.ndarray, side: int, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(rgb).resize((side, side), Image.Resampling.BILINEAR).save(
        buf, "JPEG", quality=quality
    )
    return np.asarray(Image.open(buf).convert("RGB"))


@pytest.fixture(scope="module")
def rasters() -> list[np.ndarray]:
    if not SVG_ROOT.is_dir():
        pytest.skip("openclipart-svg is not installed")
    return [_raster(rel) for rel in SVGS]


def test_hamming_matrix_golden():
    a = np.array([0, 0xFF, (1 << 64) - 1], dtype=np.uint64)
    b = np.array([0, 1, 0xF0F0], dtype=np.uint64)
    np.testing.assert_array_equal(dedup.hamming_matrix(a, b), [[0, 1, 8], [8, 7, 8], [64, 63, 56]])


def test_resized_recompressed_copy_is_removed_and_distinct_images_kept(rasters):
    evals = dedup.compute_signatures(rasters[:3])
    copy = _resized_jpeg(rasters[0], 48, 75)  # 64 -> 48 px, JPEG q75
    train_images = [copy, rasters[1].copy(), *rasters[3:]]  # exact copy of eval 1, then others
    train = dedup.compute_signatures(train_images)
    m = dedup.find_near_duplicates(train, evals, hamming=4)
    assert m.train.tolist() == [0, 1]
    assert m.eval.tolist() == [0, 1]
    assert m.exact.tolist() == [False, True]
    assert m.hamming[1] == 0 and m.thumb_mad[1] == 0.0
    assert m.hamming[0] <= 4 and m.thumb_mad[0] <= dedup.MAX_THUMB_MAD


def test_flags_sharing_a_hash_are_told_apart_by_colour(rasters):
    """Two different flags (same layout, other colours): the thumbnail check keeps them apart."""
    albania, andorra = rasters[4], rasters[5]
    recoloured = albania[:, :, ::-1].copy()  # same edges, different colours
    sig = dedup.compute_signatures([albania, andorra, recoloured])
    m = dedup.find_near_duplicates(sig.take([1, 2]), sig.take([0]), hamming=64)
    assert len(m) == 0  # every pair is within Hamming 64; none passes the colour check


def test_blank_images_never_match():
    white = np.full((64, 64, 3), 255, np.uint8)
    sig = dedup.compute_signatures([white, white.copy()])
    assert sig.informative.tolist() == [False, False]
    m = dedup.find_near_duplicates(sig.take([0]), sig.take([1]), hamming=4)
    assert len(m) == 0


def test_chunking_does_not_change_matches(rasters):
    rng = np.random.default_rng(0)
    evals = dedup.compute_signatures(rasters)
    train_imgs = [_resized_jpeg(r, int(s), 80) for r, s in zip(rasters, rng.integers(40, 90, 6))]
    train = dedup.compute_signatures(train_imgs + rasters[::-1])
    whole = dedup.find_near_duplicates(train, evals, hamming=6)
    chunked = dedup.find_near_duplicates(train, evals, hamming=6, chunk_pairs=7)
    for field in ("train", "eval", "hamming", "thumb_mad", "exact"):
        np.testing.assert_array_equal(getattr(whole, field), getattr(chunked, field))
    assert len(whole) >= 9  # the 6 exact copies plus most resized ones


def test_report_counts_per_category(rasters, tmp_path):
    evals = dedup.compute_signatures(rasters[:2])
    train = dedup.compute_signatures([rasters[0], rasters[2], rasters[3]])
    m = dedup.find_near_duplicates(train, evals, hamming=4)
    report = dedup.dedup_report(
        m,
        train_ids=["t0", "t1", "t2"],
        train_categories=["animals", "animals", "transportation"],
        eval_ids=["e0", "e1"],
        hamming=4,
        max_thumb_mad=dedup.MAX_THUMB_MAD,
        targets=["openclipart"],
    )
    assert report["num_removed"] == 1
    assert report["removed"][0]["train_id"] == "t0" and report["removed"][0]["eval_id"] == "e0"
    assert report["share_removed_per_category"]["animals"] == {
        "removed": 1,
        "total": 2,
        "share": 0.5,
    }
    assert report["share_removed_per_category"]["transportation"]["removed"] == 0
    # signatures round-trip through npz
    train.save(tmp_path / "s.npz")
    back = dedup.Signatures.load(tmp_path / "s.npz")
    np.testing.assert_array_equal(back.hash64, train.hash64)
    np.testing.assert_array_equal(back.thumb, train.thumb)
