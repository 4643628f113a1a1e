"""The in-place random horizontal flip mirrors about half of the images exactly and leaves the
others untouched, both as plain Python and as FFCV compiles it (numba)."""

from __future__ import annotations

import numpy as np
import pytest
from ffcv.pipeline.compiler import Compiler

from datamodules.ffcv_flip import InPlaceRandomHorizontalFlip


@pytest.mark.parametrize("compiled", [False, True])
def test_flip_mirrors_a_share_of_images_in_place(compiled):
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
    assert 0.4 < mirrored.mean() < 0.6  # 400 fair coins: 5 sigma


def test_flip_probability_bounds():
    images = np.arange(2 * 2 * 4 * 3, dtype=np.uint8).reshape(2, 2, 4, 3)
    never = InPlaceRandomHorizontalFlip(0.0).generate_code()(images.copy(), None)
    always = InPlaceRandomHorizontalFlip(1.0).generate_code()(images.copy(), None)
    assert np.array_equal(never, images)
    assert np.array_equal(always, images[:, :, ::-1])
