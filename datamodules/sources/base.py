"""Source records: one tagged image, and decoding it to RGB pixels.

Every source (OpenClipart, the synthetic world, a user manifest) yields :class:`TaggedImage`
records. A record carries either a path to an encoded file (decoded lazily by :func:`load_rgb`),
the encoded bytes themselves (a member of a WebDataset tar), or the decoded pixels (the
synthetic world renders on access).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

# Pillow's decompression-bomb guard stays on; a truncated file must raise, not half-decode.
Image.LOAD_TRUNCATED_IMAGES = False


@dataclass(frozen=True)
class TaggedImage:
    """One image and the tags a person gave it.

    ``source_id`` is stable across runs (``"openclipart:animals/cat_01"``): hashing it decides
    shards and the held-out split. ``tags`` are raw, as written (normalization happens in the
    vocabulary stage). Exactly one of ``path`` / ``pixels`` / ``data`` is normally set.
    """

    source_id: str
    tags: tuple[str, ...]
    category: str | None = None
    path: str | None = None
    pixels: np.ndarray | None = None
    data: bytes | None = None  # an encoded image in memory (JPEG/PNG/... bytes)


class CorruptImage(Exception):
    """An image that cannot be decoded; the message says why. Callers skip, count and list."""


def resize_rgb(rgb: np.ndarray, size: int) -> np.ndarray:
    """Resize the shorter side to ``size`` (bilinear, antialiased) and center-crop a square.

    This keeps the aspect ratio of the content (no stretching) at the cost of the borders of
    elongated images, the usual evaluation-time transform (resize + center crop).
    """
    h, w = rgb.shape[:2]
    if (h, w) == (size, size):
        return rgb
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    img = Image.fromarray(rgb).resize((nw, nh), Image.Resampling.BILINEAR, reducing_gap=None)
    top, left = (nh - size) // 2, (nw - size) // 2
    return np.asarray(img.crop((left, top, left + size, top + size)), dtype=np.uint8)


def _as_rgb_uint8(arr: np.ndarray, where: str) -> np.ndarray:
    if arr.dtype != np.uint8:
        raise CorruptImage(f"{where}: pixels must be uint8, got {arr.dtype}")
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise CorruptImage(f"{where}: pixels must be HxWx3, got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise CorruptImage(f"{where}: zero-size pixel array {arr.shape}")
    return np.ascontiguousarray(arr[:, :, :3])


def _decode(fp, where: str) -> np.ndarray:
    with Image.open(fp) as img:
        img.load()  # raises OSError on truncated data
        if img.width == 0 or img.height == 0:
            raise CorruptImage(f"{where}: zero-size image")
        if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
            rgba = img.convert("RGBA")
            canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            img = Image.alpha_composite(canvas, rgba)
        return np.asarray(img.convert("RGB"), dtype=np.uint8)


def _decoding(fp, where: str) -> np.ndarray:
    try:
        return _decode(fp, where)
    except UnidentifiedImageError:
        raise CorruptImage(f"{where}: not an image file (unknown format)") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise CorruptImage(f"{where}: cannot decode: {exc}") from None


def decode_file(path: str | Path) -> np.ndarray:
    """Decode an image file to RGB uint8 HxWx3; :class:`CorruptImage` with the reason on failure.

    Transparent images are composited onto white (clip art and icons are drawn for a white page).
    """
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise CorruptImage(f"{path}: zero-size file")
    except FileNotFoundError:
        raise CorruptImage(f"{path}: file not found") from None
    return _decoding(path, str(path))


def decode_bytes(data: bytes, where: str) -> np.ndarray:
    """:func:`decode_file` for an encoded image held in memory (``where`` names it)."""
    if not data:
        raise CorruptImage(f"{where}: zero-size image data")
    return _decoding(io.BytesIO(data), where)


def load_rgb(rec: TaggedImage, size: int | None = None) -> np.ndarray:
    """The record's image as RGB uint8 HxWx3; square ``size`` x ``size`` when ``size`` is given
    (shorter side resized to ``size``, then center-cropped: see :func:`resize_rgb`).

    Raises :class:`CorruptImage` (with the reason) for missing, zero-size, truncated or
    non-image files, and for malformed pixel arrays.
    """
    if rec.pixels is not None:
        rgb = _as_rgb_uint8(np.asarray(rec.pixels), rec.source_id)
    elif rec.path is not None:
        rgb = decode_file(rec.path)
    elif rec.data is not None:
        rgb = decode_bytes(rec.data, rec.source_id)
    else:
        raise CorruptImage(f"{rec.source_id}: record has neither a path nor pixels")
    return resize_rgb(rgb, size) if size is not None else rgb
