"""Target loaders: image folders, Fashion-MNIST, and their errors (synthetic and OpenClipart
targets are tested beside their sources)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from datamodules.errors import UserInputError
from datamodules.sources import load_target
from datamodules.sources.targets import FASHION_MNIST_DIR

SIZE = 24
COUNTS = {"cat": 7, "dog": 5, "eel": 3}


def _folder(root: Path, split: str, counts: dict[str, int]) -> None:
    for k, (cls, n) in enumerate(counts.items()):
        d = root / split / cls
        d.mkdir(parents=True)
        for i in range(n):
            Image.fromarray(np.full((20, 30, 3), 30 * k + i, np.uint8)).save(d / f"{i}.png")


def _load(root, **kw):
    return load_target("imagefolder", root=str(root), image_size=SIZE, seed=0, cache_dir="", **kw)


def test_imagefolder_with_train_and_val(tmp_path):
    _folder(tmp_path, "train", COUNTS)
    _folder(tmp_path, "val", {"cat": 2, "dog": 1, "eel": 1})
    (tmp_path / "train" / "cat" / "notes.txt").write_text("not an image")  # ignored
    ds = _load(tmp_path)
    assert ds.classes == ["cat", "dog", "eel"]
    assert np.bincount(ds.train.labels).tolist() == [7, 5, 3]
    assert np.bincount(ds.val.labels).tolist() == [2, 1, 1]
    img, label = ds.train[7]  # first dog
    assert img.shape == (SIZE, SIZE, 3) and img.dtype == np.uint8 and label == 1
    assert (img == 30).all()
    capped = _load(tmp_path, max_per_class=4)
    assert np.bincount(capped.train.labels).tolist() == [4, 4, 3]


def test_imagefolder_without_val_is_a_seeded_stratified_split(tmp_path):
    _folder(tmp_path, "train", {"cat": 10, "dog": 10})
    ds = _load(tmp_path)
    assert np.bincount(ds.val.labels).tolist() == [2, 2]  # 20% of each class
    assert np.bincount(ds.train.labels).tolist() == [8, 8]
    assert not set(ds.train.ids) & set(ds.val.ids)
    assert _load(tmp_path).val.ids == ds.val.ids
    other = load_target("imagefolder", root=str(tmp_path), image_size=SIZE, seed=5, cache_dir="")
    assert other.val.ids != ds.val.ids


def test_imagefolder_errors(tmp_path):
    with pytest.raises(UserInputError, match="target_root"):
        _load("")
    with pytest.raises(UserInputError, match="missing split folder train/"):
        _load(tmp_path)
    _folder(tmp_path, "train", {"cat": 3})
    with pytest.raises(UserInputError, match="at least 2"):
        _load(tmp_path)
    _folder(tmp_path, "val", {"cow": 1})
    (tmp_path / "train" / "dog").mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "train" / "dog" / "a.png")
    with pytest.raises(UserInputError, match="not in train/: cow"):
        _load(tmp_path)


def test_unknown_target_names_the_choices():
    with pytest.raises(UserInputError, match="unknown target 'imagenet'.*fashion_mnist"):
        load_target("imagenet", image_size=SIZE, seed=0, cache_dir="")


@pytest.mark.skipif(
    not Path(FASHION_MNIST_DIR).is_dir(), reason="Debian dataset-fashion-mnist not installed"
)
def test_fashion_mnist_full_and_capped():
    ds = load_target("fashion_mnist", image_size=SIZE, seed=0, cache_dir="")
    assert len(ds.classes) == 10 and len(ds.train) == 60000 and len(ds.val) == 10000
    assert np.bincount(ds.train.labels).tolist() == [6000] * 10
    img, _ = ds.val[0]
    assert img.shape == (SIZE, SIZE, 3) and img.dtype == np.uint8
    assert (img[..., 0] == img[..., 1]).all() and img.max() > 100  # gray, not blank
    small = load_target("fashion_mnist", image_size=SIZE, seed=0, cache_dir="", max_per_class=5)
    assert np.bincount(small.train.labels).tolist() == [5] * 10
    assert np.bincount(small.val.labels).tolist() == [5] * 10
    again = load_target("fashion_mnist", image_size=SIZE, seed=0, cache_dir="", max_per_class=5)
    assert all(np.array_equal(again.train[i][0], small.train[i][0]) for i in range(50))
    native = load_target("fashion_mnist", image_size=28, seed=0, cache_dir="", max_per_class=1)
    assert native.train[0][0].shape == (28, 28, 3)
