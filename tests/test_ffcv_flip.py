"""The in-place random horizontal flip mirrors about half of the images exactly and leaves the
others untouched, both as plain Python and as FFCV compiles it (numba)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ffcv.pipeline.compiler import Compiler

from datamodules.ffcv_flip import InPlaceRandomHorizontalFlip


@pytest.fixture
def compiler_threads():
    """Set FFCV's compile-time thread count (prange when > 1) for one test, then restore it."""
    before, torch_before = Compiler.num_threads, torch.get_num_threads()
    yield Compiler.set_num_threads
    Compiler.set_num_threads(before)
    torch.set_num_threads(torch_before)


@pytest.mark.parametrize("compiled,threads", [(False, 1), (True, 1), (True, 2)])
def test_flip_mirrors_a_share_of_images_in_place(compiled, threads, compiler_threads):
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


def test_flip_probability_bounds():
    images = np.arange(2 * 2 * 4 * 3, dtype=np.uint8).reshape(2, 2, 4, 3)
    never = InPlaceRandomHorizontalFlip(0.0).generate_code()(images.copy(), None)
    always = InPlaceRandomHorizontalFlip(1.0).generate_code()(images.copy(), None)
    assert np.array_equal(never, images)
    assert np.array_equal(always, images[:, :, ::-1])
