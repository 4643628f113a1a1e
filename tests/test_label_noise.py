"""Label noise through HashtagDataModule: one corrupted corpus for the whole run (every epoch
reads the same replaced labels), and resampling weights computed from those noisy labels.

Uses the tiny prepared folder of tests/test_datamodule.py: each training image carries a
unique sorted triple of hashtag ids, so a clean label row names its image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from datamodules.ffcv_read import read_labels
from datamodules.label_noise import apply_label_noise
from datamodules.pretrain import HashtagDataModule
from datamodules.sampling import image_weights, label_counts
from tests.test_datamodule import NUM_TRAIN, V, _Data, make_prepared


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    return make_prepared(tmp_path_factory.mktemp("prepared_noise"))


def _epochs(dm: HashtagDataModule, n: int) -> list[torch.Tensor]:
    batches = dm.train_dataloader()
    return [torch.cat([y.clone() for _, y in batches]) for _ in range(n)]


@pytest.mark.slow
def test_replaced_labels_are_the_same_in_every_epoch(prepared):
    # natural sampling: epoch e is the same permutation for both modules (it depends on the
    # seed and epoch only), so position k of a clean epoch and of a noisy one is one image
    clean = _epochs(HashtagDataModule(_Data(sampling="natural"), 1, prepared), 3)
    noisy = _epochs(HashtagDataModule(_Data(sampling="natural", label_noise=0.5), 1, prepared), 3)
    per_image = []
    for c, y in zip(clean, noisy, strict=True):
        assert len(c) == NUM_TRAIN
        per_image.append({tuple(row.tolist()): tuple(z.tolist()) for row, z in zip(c, y)})
    assert len(per_image[0]) == NUM_TRAIN
    assert per_image[0] == per_image[1] == per_image[2]
    present = clean[0] >= 0
    changed = (noisy[0] != clean[0])[present].float().mean().item()
    n = int(present.sum())
    assert abs(changed - 0.5) < 4 * np.sqrt(0.25 / n)


def test_resampling_weights_come_from_the_noisy_labels(prepared):
    p, seed = 0.5, 4
    dm = HashtagDataModule(_Data(sampling="uniform", label_noise=p), seed, prepared)
    dm.setup("fit")
    rows = read_labels(dm.train_path)
    clean_counts = label_counts([rows], V)
    assert np.array_equal(dm.hashtag_counts, clean_counts)  # the noise marginal stays clean
    noisy = apply_label_noise(rows, np.arange(len(rows)), p, "natural", clean_counts, seed)
    noisy_counts = label_counts([noisy], V)
    expected = image_weights([noisy], noisy_counts, "uniform", "mean", len(rows))
    clean_weights = image_weights([rows], clean_counts, "uniform", "mean", len(rows))
    assert np.array_equal(dm.sampler.weights, expected)
    assert not np.allclose(dm.sampler.weights, clean_weights)
