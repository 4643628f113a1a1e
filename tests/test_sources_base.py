"""load_rgb: decoding, compositing, resizing, and CorruptImage for broken inputs."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from datamodules.sources.base import CorruptImage, TaggedImage, load_rgb, resize_rgb


def _jpeg_bytes(h=40, w=60) -> bytes:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def _rec(path) -> TaggedImage:
    return TaggedImage("test:x", ("a",), None, str(path))


def test_decodes_jpeg_and_resizes_shorter_side_then_center_crops(tmp_path):
    f = tmp_path / "a.jpg"
    f.write_bytes(_jpeg_bytes(40, 60))
    rgb = load_rgb(_rec(f))
    assert rgb.shape == (40, 60, 3) and rgb.dtype == np.uint8
    small = load_rgb(_rec(f), size=20)
    assert small.shape == (20, 20, 3) and small.dtype == np.uint8


def test_center_crop_keeps_the_middle():
    img = np.zeros((10, 30, 3), np.uint8)
    img[:, 10:20] = 255  # the middle third is white
    out = resize_rgb(img, 10)
    assert out.shape == (10, 10, 3)
    assert out.min() == 255  # only the white middle survives the crop


def test_transparent_png_is_composited_on_white(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[:4, :, :] = (255, 0, 0, 255)  # opaque red top half, transparent bottom
    f = tmp_path / "t.png"
    Image.fromarray(rgba, "RGBA").save(f)
    rgb = load_rgb(_rec(f))
    assert rgb[0, 0].tolist() == [255, 0, 0]
    assert rgb[7, 7].tolist() == [255, 255, 255]


def test_pixels_record_and_grayscale_array():
    gray = np.arange(16, dtype=np.uint8).reshape(4, 4)
    rgb = load_rgb(TaggedImage("test:p", (), pixels=gray))
    assert rgb.shape == (4, 4, 3) and (rgb[..., 0] == gray).all() and (rgb[..., 2] == gray).all()


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"", "zero-size"),
        (b"just some text, not an image\n", "not an image"),
        (None, "truncated"),  # filled below: a JPEG cut in half
    ],
)
def test_corrupt_files_raise_with_reason(tmp_path, content, reason):
    f = tmp_path / "bad.jpg"
    if content is None:
        data = _jpeg_bytes(64, 64)
        content = data[: len(data) // 2]
    f.write_bytes(content)
    with pytest.raises(CorruptImage, match=reason):
        load_rgb(_rec(f))


def test_missing_file_and_empty_record_raise(tmp_path):
    with pytest.raises(CorruptImage, match="not found"):
        load_rgb(_rec(tmp_path / "nope.png"))
    with pytest.raises(CorruptImage, match="neither a path nor pixels"):
        load_rgb(TaggedImage("test:empty", ()))
    with pytest.raises(CorruptImage, match="uint8"):
        load_rgb(TaggedImage("test:f", (), pixels=np.zeros((4, 4, 3), np.float32)))
