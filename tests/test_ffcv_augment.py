"""The seeded FFCV augmentations: the hash, the epoch key read at run time by compiled code, the
crop (FFCV's RandomResizedCrop algorithm, draw for draw) and the in-place flip."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ffcv.fields import rgb_image
from ffcv.pipeline.compiler import Compiler

from datamodules.errors import UserInputError
from datamodules.ffcv_augment import (
    FLIP_DRAW,
    EpochKey,
    InPlaceRandomHorizontalFlip,
    check_crop,
    load_key,
    random_crop,
    sample_key,
    uniform,
)

RATIO = (3 / 4, 4 / 3)


def _sample(key, sample_id: int) -> np.uint64:
    """A sample's key as numpy uint64 (numba returns uint64 to Python as a plain int)."""
    return np.uint64(sample_key(key, sample_id))


@pytest.fixture
def compiler_threads():
    """Set FFCV's compile-time thread count (prange when > 1) for one test, then restore it."""
    before, torch_before = Compiler.num_threads, torch.get_num_threads()
    yield Compiler.set_num_threads
    Compiler.set_num_threads(before)
    torch.set_num_threads(torch_before)


# --- the generator -----------------------------------------------------------------------------
def test_epoch_key_is_read_from_its_cell_and_depends_on_seed_and_epoch():
    key = EpochKey(seed=3)
    values = {}
    for epoch in (0, 1, 2):
        key.set_epoch(epoch)
        assert load_key(key.address) == key.value  # compiled read through the address
        values[(3, epoch)] = int(key.value)
    for seed in (4, -1):
        values[(seed, 0)] = int(EpochKey(seed).value)
    assert len(set(values.values())) == len(values)
    assert int(EpochKey(3, 2).value) == values[(3, 2)]  # a pure function of (seed, epoch)
    with pytest.raises(ValueError, match="epoch"):
        key.set_epoch(-1)


def test_draws_are_uniform_and_independent_across_samples_and_draws():
    key = EpochKey(0).value
    u = np.array([[uniform(_sample(key, s), d) for d in range(8)] for s in range(20000)])
    assert u.min() >= 0.0 and u.max() < 1.0
    for column in (u[:, 0], u[:, 5], u.ravel()):  # empirical CDF within 4 sigma of uniform
        grid = np.linspace(0.05, 0.95, 19)
        cdf = (column[:, None] < grid).mean(axis=0)
        assert np.abs(cdf - grid).max() < 4 * 0.5 / np.sqrt(len(column))
    corr = np.corrcoef(u.T)  # draws of one sample, and neighbouring samples, uncorrelated
    assert np.abs(corr - np.eye(8)).max() < 0.04
    assert abs(np.corrcoef(u[:-1, 0], u[1:, 0])[0, 1]) < 0.04


# --- the crop ----------------------------------------------------------------------------------
def _ffcv_crop_with_our_draws(height, width, scale, sample, monkeypatch):
    """FFCV's own get_random_crop (plain Python) fed draws 1, 2, ... of ``sample``."""
    draws = iter(range(1, 100))

    def fake_uniform(lo, hi):
        return lo + (hi - lo) * uniform(sample, next(draws))

    monkeypatch.setattr(rgb_image.np.random, "uniform", fake_uniform)
    return rgb_image.get_random_crop(height, width, scale, np.array(RATIO))


def test_crop_is_ffcvs_random_resized_crop_draw_for_draw(monkeypatch):
    """Over sizes that include every branch (accepted box, fallback on too-wide, too-tall and
    in-range images), the box equals FFCV's get_random_crop given the same uniform numbers, in
    plain Python and as numba compiles it."""
    key = EpochKey(11, 2).value
    sizes = [(32, 40), (256, 256), (300, 200), (1, 1), (7, 500), (500, 7), (2, 3)]
    fallback = {(7, 500): (0, 245, 7, 9), (500, 7): (245, 0, 9, 7)}  # no attempt fits
    for height, width in sizes:
        for s in range(300):
            sample = _sample(key, s)
            with monkeypatch.context() as patch:
                expected = _ffcv_crop_with_our_draws(height, width, (0.08, 1.0), sample, patch)
            assert random_crop(height, width, 0.08, 1.0, *RATIO, sample) == expected
            assert random_crop.py_func(height, width, 0.08, 1.0, *RATIO, sample) == expected
            i, j, h, w = expected
            assert 0 <= i and i + h <= height and 0 <= j and j + w <= width and h > 0 and w > 0
            assert expected == fallback.get((height, width), expected)


def test_crop_distribution_matches_ffcvs_with_numpys_generator():
    """Area shares and aspect ratios of 5000 boxes match those of FFCV's get_random_crop driven
    by numpy's generator (quantiles within sampling error; a 400x300 image rejects some
    large boxes, so the share is not simply uniform)."""
    key, n = EpochKey(0).value, 5000
    ours = np.array([random_crop(300, 400, 0.25, 1.0, *RATIO, _sample(key, s)) for s in range(n)])
    np.random.seed(0)
    theirs = np.array([rgb_image.get_random_crop(300, 400, (0.25, 1.0), RATIO) for _ in range(n)])
    for boxes in (ours, theirs):
        assert (boxes[:, 0] + boxes[:, 2] <= 300).all() and (boxes[:, 1] + boxes[:, 3] <= 400).all()
    for stat in (
        lambda b: b[:, 2] * b[:, 3] / (300 * 400),  # area share
        lambda b: np.log(b[:, 3] / b[:, 2]),  # log aspect ratio
        lambda b: b[:, 0] / np.maximum(300 - b[:, 2], 1),  # relative offsets
        lambda b: b[:, 1] / np.maximum(400 - b[:, 3], 1),
    ):
        q_ours, q_theirs = (
            np.quantile(stat(b), [0.1, 0.25, 0.5, 0.75, 0.9]) for b in (ours, theirs)
        )
        spread = np.quantile(stat(theirs), 0.9) - np.quantile(stat(theirs), 0.1)
        assert np.abs(q_ours - q_theirs).max() < 0.05 * spread


def test_crop_scale_is_checked():
    check_crop((0.08, 1.0), RATIO)
    for bad in [(0.0, 1.0), (0.5, 0.4), (0.1, 1.5)]:
        with pytest.raises(UserInputError, match="crop_min_scale"):
            check_crop(bad, RATIO)


# --- the flip ----------------------------------------------------------------------------------
@pytest.mark.parametrize("compiled,threads", [(False, 1), (True, 1), (True, 2)])
def test_unseeded_flip_mirrors_a_share_of_images_in_place(compiled, threads, compiler_threads):
    compiler_threads(threads)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (400, 6, 7, 3), dtype=np.uint8)  # odd width: middle column stays
    original = images.copy()
    flip = InPlaceRandomHorizontalFlip(0.5).generate_code()
    if compiled:
        flip = Compiler.compile(flip)
    out = flip(images, None)
    assert out is images or np.shares_memory(out, images)
    mirrored = np.all(out == original[:, :, ::-1], axis=(1, 2, 3))
    same = np.all(out == original, axis=(1, 2, 3))
    assert np.all(mirrored | same)
    assert 0.35 < mirrored.mean() < 0.65  # 400 fair coins: 6 sigma


@pytest.mark.parametrize("threads", [1, 2])
def test_seeded_flip_follows_the_hash_and_reads_the_epoch_at_run_time(threads, compiler_threads):
    """Compiled once, the flip mirrors exactly the images whose draw 0 is below 0.5, for the
    epoch set *after* compiling (numba would freeze a closure array), shifted by first_sample_id."""
    compiler_threads(threads)
    rng = np.random.default_rng(1)
    original = rng.integers(0, 256, (300, 5, 6, 3), dtype=np.uint8)
    rows = rng.permutation(1000)[:300]
    key = EpochKey(seed=9)
    op = InPlaceRandomHorizontalFlip(0.5, key=key, first_sample_id=7)
    flip = Compiler.compile(op.generate_code())
    assert op.generate_code().with_indices
    seen = []
    for epoch in (0, 1, 0):
        key.set_epoch(epoch)
        out = flip(original.copy(), None, rows)
        mirrored = np.all(out == original[:, :, ::-1], axis=(1, 2, 3))
        assert np.all(mirrored | np.all(out == original, axis=(1, 2, 3)))
        expected = [uniform(_sample(key.value, r + 7), FLIP_DRAW) < 0.5 for r in rows]
        assert mirrored.tolist() == expected
        seen.append(mirrored)
    assert np.array_equal(seen[0], seen[2]) and 0.3 < (seen[0] != seen[1]).mean() < 0.7


def test_flip_probability_bounds():
    images = np.arange(2 * 2 * 4 * 3, dtype=np.uint8).reshape(2, 2, 4, 3)
    never = InPlaceRandomHorizontalFlip(0.0).generate_code()(images.copy(), None)
    always = InPlaceRandomHorizontalFlip(1.0).generate_code()(images.copy(), None)
    assert np.array_equal(never, images)
    assert np.array_equal(always, images[:, :, ::-1])
    key, rows = EpochKey(0), np.arange(2)
    never = InPlaceRandomHorizontalFlip(0.0, key=key).generate_code()(images.copy(), None, rows)
    always = InPlaceRandomHorizontalFlip(1.0, key=key).generate_code()(images.copy(), None, rows)
    assert np.array_equal(never, images)
    assert np.array_equal(always, images[:, :, ::-1])
