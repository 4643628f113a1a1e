"""Near-duplicate removal: training images that copy an evaluation image are dropped before writing.

Transfer results mean little if the pretraining set contains the evaluation images (the paper
removes near-duplicates of every target's images from the hashtag data). Each image gets a
:class:`Signatures` row:

* ``exact``: sha1 of the decoded pixels resized to ``EXACT_SIZE`` (a lossless re-encode of the
  same pixels, or the same picture stored twice, matches exactly);
* ``hash64``: the 64-bit difference hash (``imagehash.dhash``, 8x8 gradient signs) as a uint64;
* ``thumb``: a ``THUMB_SIZE`` x ``THUMB_SIZE`` RGB area-average thumbnail (uint8);
* ``informative``: False for near-blank images (grey-level std < ``MIN_PIXEL_STD``).

A training image is a near-duplicate of an evaluation image when the sha1 values are equal, or
when the dhash Hamming distance is ``<= hamming`` AND the mean absolute difference of the colour
thumbnails is ``<= max_thumb_mad`` (0-255 scale). Near-blank images never match: their hashes
carry no information (OpenClipart's ``special/gradients`` SVGs render to plain white, and a
white square in both splits is not a leak).

Calibration on OpenClipart (8,080 SVGs rasterized at 64 px, 20% held out by id hash; numbers in
``docs/dedup_calibration.md``): a 64-bit hash alone over-removes simple clip-art, because
distinct drawings on white (flags and gradients, LEDs and buttons in different colours) share a
hash; the colour thumbnail separates them (their MAD is 15-100) while resized and recompressed
copies stay below 10 (64->48 px + JPEG q75: max 6.8; JPEG q30: max 9.2). dhash is used instead
of phash because it is far more stable under resizing of sharp-edged clip-art: recall of a
64->48 px JPEG-q75 copy at Hamming <= 4 is 0.92 for dhash against 0.83 for phash (<= 6: 0.98
against 0.86).

Hamming distances are computed with numpy's ``bitwise_count`` on uint64 arrays in chunks, so a
pool of a million training images against fifty thousand evaluation images never materialises
more than ``chunk_pairs`` distances at once.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import imagehash
import numpy as np
from PIL import Image

EXACT_SIZE = 64  # px: pixels are resized to this square before the sha1
THUMB_SIZE = 8  # px: colour thumbnail for the second check
HASH_SIZE = 8  # dhash is HASH_SIZE**2 = 64 bits
MAX_THUMB_MAD = 10.0  # calibrated on OpenClipart: recompressed copies <= 9.2, look-alikes >= 15
MIN_PIXEL_STD = 2.0  # grey-level std (0-255) below which an image counts as blank
DEFAULT_CHUNK_PAIRS = 1 << 24  # Hamming distances held in memory at once (16 MB of uint8)


@dataclass
class Signatures:
    """Per-image fingerprints, row i describes image i."""

    exact: np.ndarray  # uint8 [N, 20] sha1 digests
    hash64: np.ndarray  # uint64 [N] dhash
    thumb: np.ndarray  # uint8 [N, THUMB_SIZE, THUMB_SIZE, 3]
    informative: np.ndarray  # bool [N]: False for near-blank images (never matched)

    def __len__(self) -> int:
        return int(self.hash64.shape[0])

    @classmethod
    def empty(cls) -> Signatures:
        return cls(
            exact=np.zeros((0, 20), np.uint8),
            hash64=np.zeros((0,), np.uint64),
            thumb=np.zeros((0, THUMB_SIZE, THUMB_SIZE, 3), np.uint8),
            informative=np.zeros((0,), bool),
        )

    @classmethod
    def from_rows(cls, rows: Sequence[tuple[bytes, int, np.ndarray, bool]]) -> Signatures:
        """Signatures from :func:`signature` rows, in order."""
        if not rows:
            return cls.empty()
        return cls(
            exact=np.stack([np.frombuffer(r[0], np.uint8) for r in rows]),
            hash64=np.asarray([r[1] for r in rows], dtype=np.uint64),
            thumb=np.stack([r[2] for r in rows]).astype(np.uint8),
            informative=np.asarray([r[3] for r in rows], dtype=bool),
        )

    @classmethod
    def concat(cls, parts: Sequence[Signatures]) -> Signatures:
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        return cls(
            exact=np.concatenate([p.exact for p in parts]),
            hash64=np.concatenate([p.hash64 for p in parts]),
            thumb=np.concatenate([p.thumb for p in parts]),
            informative=np.concatenate([p.informative for p in parts]),
        )

    def take(self, index: np.ndarray | Sequence[int]) -> Signatures:
        index = np.asarray(index, dtype=np.int64)
        return Signatures(
            self.exact[index], self.hash64[index], self.thumb[index], self.informative[index]
        )

    def save(self, path: str | Path) -> None:
        with open(path, "wb") as f:
            np.savez(
                f,
                exact=self.exact,
                hash64=self.hash64,
                thumb=self.thumb,
                informative=self.informative,
            )

    @classmethod
    def load(cls, path: str | Path) -> Signatures:
        with np.load(path) as z:
            return cls(
                exact=z["exact"],
                hash64=z["hash64"],
                thumb=z["thumb"],
                informative=z["informative"],
            )


def _dhash64(image: Image.Image) -> int:
    bits = imagehash.dhash(image, hash_size=HASH_SIZE).hash.reshape(-1)
    return int(np.packbits(bits.astype(np.uint8)).view(">u8")[0])


def signature(rgb: np.ndarray) -> tuple[bytes, int, np.ndarray, bool]:
    """(sha1 digest, 64-bit dhash, colour thumbnail, informative) of one RGB uint8 HxWx3 image."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 HxWx3 image, got {rgb.dtype} {rgb.shape}")
    image = Image.fromarray(rgb)
    fixed = np.ascontiguousarray(image.resize((EXACT_SIZE, EXACT_SIZE), Image.Resampling.BILINEAR))
    digest = hashlib.sha1(fixed.tobytes()).digest()
    thumb = np.asarray(image.resize((THUMB_SIZE, THUMB_SIZE), Image.Resampling.BOX))
    informative = bool(fixed.mean(axis=2).std() >= MIN_PIXEL_STD)
    return digest, _dhash64(image), thumb, informative


def compute_signatures(images: Iterable[np.ndarray]) -> Signatures:
    """Signatures of a stream of RGB uint8 images (in order)."""
    return Signatures.from_rows([signature(rgb) for rgb in images])


@dataclass
class Matches:
    """Training rows that duplicate an evaluation row (the closest one), one entry per train row."""

    train: np.ndarray  # int64 [M] rows of the training signatures
    eval: np.ndarray  # int64 [M] the evaluation row each matched
    hamming: np.ndarray  # int [M] dhash Hamming distance (0 for exact matches)
    thumb_mad: np.ndarray  # float [M] thumbnail mean absolute difference (0-255)
    exact: np.ndarray  # bool [M] sha1 of the pixels identical

    def __len__(self) -> int:
        return int(self.train.shape[0])


def hamming_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise Hamming distances between two uint64 hash arrays: uint8 [len(a), len(b)]."""
    return np.bitwise_count(a[:, None] ^ b[None, :])


def thumb_mad(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean absolute difference of paired thumbnails (uint8 [K, T, T, 3] each): float32 [K]."""
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
    return diff.reshape(diff.shape[0], -1).mean(axis=1, dtype=np.float32)


def _matching_pairs(
    a: Signatures,
    b: Signatures,
    *,
    hamming: int,
    max_thumb_mad: float,
    chunk_pairs: int,
    upper: bool = False,
):
    """Yield ``(i, j, hamming, mad, exact)`` for every row pair of ``a`` x ``b`` that matches
    (equal pixel sha1, or dhash Hamming <= ``hamming`` and thumbnail MAD <= ``max_thumb_mad``).
    ``upper``: ``a`` and ``b`` are the same set; only pairs with ``i < j`` are yielded. An exact
    pair is yielded once, as exact, even when its hashes also match."""
    n, e = len(a), len(b)
    if n == 0 or e == 0:
        return
    exact_pairs: set[tuple[int, int]] = set()
    by_digest: dict[bytes, list[int]] = {}
    for j in np.nonzero(b.informative)[0].tolist():
        by_digest.setdefault(b.exact[j].tobytes(), []).append(j)
    for i in np.nonzero(a.informative)[0].tolist():
        for j in by_digest.get(a.exact[i].tobytes(), ()):
            if not upper or i < j:
                exact_pairs.add((i, j))
                yield i, j, 0, 0.0, True
    rows = max(1, chunk_pairs // e)
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        dist = hamming_matrix(a.hash64[start:stop], b.hash64)
        dist[~a.informative[start:stop]] = 255
        dist[:, ~b.informative] = 255
        ti, ej = np.nonzero(dist <= hamming)
        ti = ti + start
        if upper:
            keep = ti < ej
            ti, ej = ti[keep], ej[keep]
        if ti.size == 0:
            continue
        mad = thumb_mad(a.thumb[ti], b.thumb[ej])
        ok = mad <= max_thumb_mad
        for i, j, d, m in zip(ti[ok], ej[ok], dist[ti[ok] - start, ej[ok]], mad[ok]):
            if (int(i), int(j)) not in exact_pairs:
                yield int(i), int(j), int(d), float(m), False


def find_near_duplicates(
    train: Signatures,
    evals: Signatures,
    *,
    hamming: int,
    max_thumb_mad: float = MAX_THUMB_MAD,
    chunk_pairs: int = DEFAULT_CHUNK_PAIRS,
) -> Matches:
    """Training rows that are exact or near copies of some evaluation row.

    Near copy: dhash Hamming distance <= ``hamming`` and thumbnail MAD <= ``max_thumb_mad``.
    Among several qualifying evaluation rows the closest (Hamming, then MAD) is reported.
    """
    empty = Matches(*(np.zeros(0, dt) for dt in (np.int64, np.int64, np.int64, np.float32, bool)))
    best: dict[int, tuple[int, float, int, bool]] = {}  # train row -> (ham, mad, eval row, exact)
    pairs = _matching_pairs(
        train, evals, hamming=hamming, max_thumb_mad=max_thumb_mad, chunk_pairs=chunk_pairs
    )
    for i, j, d, m, exact in pairs:
        cand = (d, m, j, exact)
        cur = best.get(i)
        if cur is None or cand[:2] < cur[:2]:
            best[i] = cand
    if not best:
        return empty
    order = sorted(best)
    return Matches(
        train=np.asarray(order, np.int64),
        eval=np.asarray([best[i][2] for i in order], np.int64),
        hamming=np.asarray([best[i][0] for i in order], np.int64),
        thumb_mad=np.asarray([best[i][1] for i in order], np.float32),
        exact=np.asarray([best[i][3] for i in order], bool),
    )


def duplicate_groups(
    sigs: Signatures,
    *,
    hamming: int,
    max_thumb_mad: float = MAX_THUMB_MAD,
    chunk_pairs: int = DEFAULT_CHUNK_PAIRS,
) -> np.ndarray:
    """Group ids int64 [N] of one set: rows joined by a chain of near-duplicate pairs (the same
    criterion as :func:`find_near_duplicates`) share an id; the id of a group is its smallest
    row, so a row without duplicates is its own group."""
    parent = np.arange(len(sigs), dtype=np.int64)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = int(parent[i])
        return i

    pairs = _matching_pairs(
        sigs,
        sigs,
        hamming=hamming,
        max_thumb_mad=max_thumb_mad,
        chunk_pairs=chunk_pairs,
        upper=True,
    )
    for i, j, *_ in pairs:
        ri, rj = root(i), root(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)
    return np.asarray([root(i) for i in range(len(sigs))], dtype=np.int64)


def dedup_report(
    matches: Matches,
    *,
    train_ids: Sequence[str],
    train_categories: Sequence[str | None],
    eval_ids: Sequence[str],
    hamming: int,
    max_thumb_mad: float,
    targets: Sequence[str],
    sample_size: int = 20,
) -> dict:
    """The JSON report: every removed training id with the eval id it matched and the distances,
    the share removed per category, and a sample of matched pairs for eyeballing."""
    per_total = Counter(c or "" for c in train_categories)
    per_removed = Counter(train_categories[i] or "" for i in matches.train.tolist())
    removed = [
        {
            "train_id": train_ids[i],
            "eval_id": eval_ids[j],
            "hamming": int(d),
            "thumb_mad": round(float(m), 2),
            "exact": bool(x),
        }
        for i, j, d, m, x in zip(
            matches.train.tolist(),
            matches.eval.tolist(),
            matches.hamming,
            matches.thumb_mad,
            matches.exact,
        )
    ]
    step = max(1, len(removed) // sample_size) if removed else 1
    return {
        "criterion": {
            "exact": f"sha1 of pixels resized to {EXACT_SIZE}x{EXACT_SIZE}",
            "dhash_bits": HASH_SIZE * HASH_SIZE,
            "min_pixel_std": MIN_PIXEL_STD,
            "hamming": hamming,
            "thumb_size": THUMB_SIZE,
            "max_thumb_mad": max_thumb_mad,
        },
        "targets": list(targets),
        "num_train": len(train_ids),
        "num_eval": len(eval_ids),
        "num_removed": len(removed),
        "share_removed": round(len(removed) / max(1, len(train_ids)), 6),
        "num_exact": int(matches.exact.sum()),
        "share_removed_per_category": {
            c: {
                "removed": per_removed.get(c, 0),
                "total": t,
                "share": round(per_removed.get(c, 0) / t, 6),
            }
            for c, t in sorted(per_total.items())
        },
        "sample": removed[::step][:sample_size],
        "removed": removed,
    }
