"""Small fake transfer targets for tests (numpy only: the spawned writer imports this module)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NUM_CLASSES = 4


@dataclass
class FakeTarget:
    name: str
    classes: list
    train: list
    val: list


def _images(num: int, num_classes: int, size: int, seed: int):
    """(rgb, label) pairs: class c is a colour gradient in direction c plus pixel noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = []
    for i in range(num):
        c = i % num_classes
        angle = np.pi * c / num_classes
        ramp = np.cos(angle) * xx + np.sin(angle) * yy
        colour = np.array([(c * 70) % 256, (255 - c * 50) % 256, (c * 130) % 256])
        img = ramp[..., None] * colour + rng.normal(0, 25, (size, size, 3))
        out.append((np.clip(img, 0, 255).astype(np.uint8), c))
    return out


def fake_load_target(name, *, root="", image_size, seed, cache_dir, **_):
    """``load_target``'s signature (optional keywords ignored); module-level so the spawned writer can import it."""
    if name == "one_class":
        return FakeTarget(
            name, ["only"], _images(20, 1, image_size, 0), _images(5, 1, image_size, 1)
        )
    if name == "no_val":
        return FakeTarget(name, ["a", "b"], _images(20, 2, image_size, 0), [])
    classes = [f"class{c}" for c in range(NUM_CLASSES)]
    return FakeTarget(
        name,
        classes,
        _images(160, NUM_CLASSES, image_size, seed),
        _images(64, NUM_CLASSES, image_size, seed + 1),
    )


def copies_load_target(name, *, root="", image_size, seed, cache_dir, **_):
    """A target with copies: train images 0-3 stored twice more under another label
    (conflicting copies), val images 0-5 exact copies of train images 8-13 (same label), and
    train images 20 and 21 exact copies of train image 16 (same label: one group)."""
    classes = [f"class{c}" for c in range(NUM_CLASSES)]
    train = _images(80, NUM_CLASSES, image_size, seed)
    val = _images(40, NUM_CLASSES, image_size, seed + 1)
    for i in range(4):  # picture i again, under the next class
        train.append((train[i][0].copy(), (train[i][1] + 1) % NUM_CLASSES))
    for i in range(6):
        val[i] = (train[8 + i][0].copy(), train[8 + i][1])
    for j in (20, 21):
        train[j] = (train[16][0].copy(), train[16][1])
    return FakeTarget(name, classes, train, val)
