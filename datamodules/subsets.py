"""Nested data-scale subsets and the pretraining train/val split, by a seeded hash of the source id.

Every id gets a uniform number ``u(id, seed, salt)`` in [0, 1) from blake2b. A fraction ``f``
keeps the ids with ``u < f``; an absolute count ``n`` keeps the ``n`` ids with the smallest ``u``.
Both read the same numbers, so subsets are nested across scales and kinds (the 1% set lies inside
the 10% set, inside 5,000 images if that is larger, inside the full set), and an id's membership
does not depend on which other ids are present (adding images to the corpus never reshuffles
the existing ones). The train/val split uses the same mechanism with a different salt, so an id
is always on the same side of the split whatever the scale.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from datamodules.errors import UserInputError

SCALE_SALT = "scale"
VAL_SALT = "val"


def unit_hash(source_id: str, seed: int, salt: str) -> float:
    """A deterministic uniform number in [0, 1) for ``source_id`` (53 bits of blake2b)."""
    digest = hashlib.blake2b(
        source_id.encode("utf-8"), digest_size=8, key=f"{salt}:{seed}".encode()
    ).digest()
    return (int.from_bytes(digest, "little") >> 11) / float(1 << 53)


def unit_hashes(ids: Sequence[str], seed: int, salt: str) -> np.ndarray:
    """``unit_hash`` of every id: float64 [len(ids)]."""
    return np.fromiter((unit_hash(i, seed, salt) for i in ids), dtype=np.float64, count=len(ids))


def scale_subset(ids: Sequence[str], scale: float, seed: int) -> np.ndarray:
    """Sorted indices of the ids kept at ``scale``: a fraction if ``scale <= 1``, else a count.

    Raises :class:`UserInputError` for a non-positive scale, a non-integer count, or a count
    larger than the corpus.
    """
    if scale <= 0:
        raise UserInputError(
            f"data.write.scale={scale} must be > 0 (a fraction <= 1 or a number of images > 1)"
        )
    u = unit_hashes(ids, seed, SCALE_SALT)
    if scale <= 1:
        return np.nonzero(u < scale)[0]
    if scale != int(scale):
        raise UserInputError(
            f"data.write.scale={scale}: a scale above 1 is a number of images and must be a whole number"
        )
    count = int(scale)
    if count > len(ids):
        raise UserInputError(
            f"data.write.scale={count} images asked but only {len(ids)} remain after labelling and "
            f"dedup; use data.write.scale<={len(ids)} or a fraction"
        )
    # stable sort: ties (practically impossible) broken by position, deterministic either way
    return np.sort(np.argsort(u, kind="stable")[:count])


def train_val_split(
    ids: Sequence[str], val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, val indices), sorted; an id is in val when ``u(id, seed, "val") < val_fraction``."""
    if not 0 <= val_fraction < 1:
        raise UserInputError(f"data.write.val_fraction={val_fraction} must be in [0, 1)")
    is_val = unit_hashes(ids, seed, VAL_SALT) < val_fraction
    return np.nonzero(~is_val)[0], np.nonzero(is_val)[0]
