"""FFCV file format: exact round trips of images, labels and ids; errors instead of hangs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from datamodules.errors import UserInputError
from datamodules.ffcv_read import int_pipeline, labels_pipeline, read_field_names, read_labels
from datamodules.ffcv_store import run_in_fresh_process, write_hashtag_beton, write_target_beton


class _Items:
    """Deterministic small images with 0..5 labels each (some beyond max_labels=3)."""

    def __init__(self, n: int, size: int = 16):
        self.n, self.size = n, size

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if i >= self.n:
            raise IndexError(i)
        rng = np.random.default_rng(i)
        rgb = rng.integers(0, 256, (self.size, self.size, 3), dtype=np.uint8)
        labels = sorted(set(rng.integers(0, 50, i % 6).tolist()))
        return rgb, labels, 1000 + i


class _Broken(_Items):
    def __getitem__(self, i):
        if i == 7:
            raise OSError("cannot read image 7")
        return super().__getitem__(i)


def _expected_labels(items, width):
    rows = np.full((len(items), width), -1, dtype=np.int32)
    for i in range(len(items)):
        ids = items[i][1][:width]
        rows[i, : len(ids)] = ids
    return rows


def _write_all(folder):
    """Every write of this module in one spawned process (spawning costs seconds)."""
    folder = Path(folder)
    hashtag = write_hashtag_beton(
        folder / "train.beton",
        _Items(40),
        max_labels=3,
        max_resolution=64,
        jpeg_quality=90,
        write_mode="raw",
        num_workers=2,
    )
    target = write_target_beton(
        folder / "target.beton", _target_items(), max_resolution=32, jpeg_quality=95, num_workers=1
    )
    try:
        write_hashtag_beton(
            folder / "broken" / "broken.beton",
            _Broken(20),
            max_labels=2,
            max_resolution=32,
            write_mode="raw",
            num_workers=2,
        )
        broken = "no error"
    except RuntimeError as exc:
        broken = str(exc)
    return hashtag, target, broken


def _target_items():
    return [(_SMOOTH, k % 4) for k in range(12)]


_SMOOTH = np.linspace(0, 255, 32 * 32 * 3).reshape(32, 32, 3).astype(np.uint8)


def _fails(message):
    raise ValueError(message)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    folder = tmp_path_factory.mktemp("betons")
    hashtag, target, broken = run_in_fresh_process(_write_all, folder)
    return folder, hashtag, target, broken


def test_hashtag_round_trip_raw_is_exact(written):
    from ffcv.fields.decoders import SimpleRGBImageDecoder
    from ffcv.loader import Loader, OrderOption

    folder, stats, _, _ = written
    items = _Items(40)
    path = folder / "train.beton"
    all_ids = [len(items[i][1]) for i in range(len(items))]
    assert stats["num_images"] == 40
    assert stats["labels_total"] == sum(all_ids)
    assert stats["labels_dropped"] == sum(max(0, n - 3) for n in all_ids) > 0
    assert stats["images_truncated"] == sum(n > 3 for n in all_ids)
    assert stats["images_without_labels"] == sum(n == 0 for n in all_ids)
    assert read_field_names(path) == ["image", "labels", "num_labels", "sample_id"]
    assert sorted(p.name for p in folder.iterdir()) == ["broken", "target.beton", "train.beton"]

    expected = _expected_labels(items, 3)
    np.testing.assert_array_equal(read_labels(path, chunk=7), expected)

    subset = [i for i in range(40) if i % 3 == 0]
    loader = Loader(
        str(path),
        batch_size=len(subset),
        num_workers=1,
        order=OrderOption.SEQUENTIAL,
        indices=subset,
        drop_last=False,
        pipelines={
            "image": [SimpleRGBImageDecoder()],
            "labels": labels_pipeline(),
            "num_labels": int_pipeline(),
            "sample_id": int_pipeline(),
        },
    )
    images, labels, num_labels, sample_ids = next(iter(loader))
    for row, i in enumerate(subset):
        np.testing.assert_array_equal(images[row], items[i][0])
    assert labels.dtype == torch.int32
    np.testing.assert_array_equal(labels.numpy(), expected[subset])
    np.testing.assert_array_equal(num_labels.numpy(), [min(3, all_ids[i]) for i in subset])
    np.testing.assert_array_equal(sample_ids.numpy(), [1000 + i for i in subset])


def test_target_round_trip_jpeg_is_close(written):
    from ffcv.fields.decoders import SimpleRGBImageDecoder
    from ffcv.loader import Loader, OrderOption

    folder, _, stats, _ = written
    path = folder / "target.beton"
    assert stats["num_images"] == 12
    assert read_field_names(path) == ["image", "label"]
    loader = Loader(
        str(path),
        batch_size=12,
        num_workers=1,
        order=OrderOption.SEQUENTIAL,
        pipelines={"image": [SimpleRGBImageDecoder()], "label": int_pipeline()},
    )
    images, labels = next(iter(loader))
    assert np.abs(images[0].astype(int) - _SMOOTH.astype(int)).mean() < 3.0
    np.testing.assert_array_equal(labels.numpy(), [k % 4 for k in range(12)])


def test_failing_item_fails_the_write_instead_of_hanging(written):
    folder, _, _, broken = written
    assert "1 item(s) raised" in broken and "cannot read image 7" in broken
    assert list((folder / "broken").iterdir()) == []  # neither the file nor temporaries


def test_fresh_process_reraises_the_error():
    with pytest.raises(ValueError, match="from the child"):
        run_in_fresh_process(_fails, "from the child")


def test_bad_arguments_are_user_errors(tmp_path):
    with pytest.raises(UserInputError, match="data.write.mode"):
        write_hashtag_beton(
            tmp_path / "x.beton", _Items(2), max_labels=2, max_resolution=32, write_mode="png"
        )
    with pytest.raises(UserInputError, match="empty"):
        write_target_beton(tmp_path / "x.beton", [], max_resolution=32)
