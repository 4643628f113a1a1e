"""Nested scale subsets and the deterministic train/val split."""

from __future__ import annotations

import numpy as np
import pytest

from datamodules.errors import UserInputError
from datamodules.subsets import scale_subset, train_val_split, unit_hash

IDS = [f"src:img_{i:05d}" for i in range(20000)]


def _ids(idx) -> set[str]:
    return {IDS[i] for i in idx}


def test_fractions_are_nested_and_close_to_size():
    one, ten, full = (_ids(scale_subset(IDS, f, seed=3)) for f in (0.01, 0.1, 1.0))
    assert one < ten < full
    assert len(full) == len(IDS)
    assert abs(len(one) - 200) < 60 and abs(len(ten) - 2000) < 150


def test_absolute_counts_exact_and_nested_with_fractions():
    small, big = scale_subset(IDS, 150, seed=3), scale_subset(IDS, 5000, seed=3)
    assert len(small) == 150 and len(big) == 5000
    assert _ids(small) < _ids(big)
    ten = _ids(scale_subset(IDS, 0.1, seed=3))
    assert _ids(small) < ten < _ids(big)  # ~2000 fraction lies between 150 and 5000 images


def test_membership_does_not_depend_on_other_ids():
    half = IDS[::2]
    a = _ids(scale_subset(IDS, 0.1, seed=0)) & set(half)
    b = {half[i] for i in scale_subset(half, 0.1, seed=0)}
    assert a == b


def test_seed_changes_the_subset():
    assert _ids(scale_subset(IDS, 0.1, seed=0)) != _ids(scale_subset(IDS, 0.1, seed=1))


def test_unit_hash_range_and_determinism():
    u = [unit_hash(i, 0, "scale") for i in IDS[:2000]]
    assert min(u) >= 0 and max(u) < 1
    assert abs(np.mean(u) - 0.5) < 0.03
    assert unit_hash("x", 0, "scale") == unit_hash("x", 0, "scale") != unit_hash("x", 0, "val")


def test_val_split_disjoint_covering_and_stable_across_scales():
    train, val = train_val_split(IDS, 0.05, seed=0)
    assert len(set(train) & set(val)) == 0 and len(train) + len(val) == len(IDS)
    assert abs(len(val) - 1000) < 100
    sub = [IDS[i] for i in scale_subset(IDS, 0.1, seed=0)]
    _, sub_val = train_val_split(sub, 0.05, seed=0)
    assert {sub[i] for i in sub_val} == _ids(val) & set(sub)


@pytest.mark.parametrize("scale", [0, -1, 1.5, 30000])
def test_bad_scales_say_what_to_fix(scale):
    with pytest.raises(UserInputError, match="data.write.scale"):
        scale_subset(IDS, scale, seed=0)
