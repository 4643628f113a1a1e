"""An in-place random horizontal flip for FFCV pipelines.

FFCV 1.0.2's ``RandomHorizontalFlip`` copies every image of the batch into a new buffer through
a strided (reversed) numba slice assignment; on 224 px crops that costs 0.13 ms per image, about
as much as the resize (measured here: training loader 4,560 -> 6,500 images/s on 2 cores without
it). This operation flips the chosen images in place with an RGB pixel-swap loop (0.035 ms per
flipped image) and allocates nothing, the way FFCV's own ``Cutout`` modifies its input.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from ffcv.pipeline.compiler import Compiler
from ffcv.pipeline.operation import Operation


class InPlaceRandomHorizontalFlip(Operation):
    """Flip each uint8 RGB (HWC) image of the batch left-right with probability ``flip_prob``."""

    def __init__(self, flip_prob: float = 0.5):
        super().__init__()
        self.flip_prob = float(flip_prob)

    def generate_code(self):
        my_range = Compiler.get_iterator()
        flip_prob = self.flip_prob

        def flip(images, *_):
            should_flip = np.random.rand(images.shape[0]) < flip_prob
            width = images.shape[2]
            for i in my_range(images.shape[0]):
                if should_flip[i]:
                    for r in range(images.shape[1]):
                        row = images[i, r]
                        for j in range(width // 2):  # swap RGB pixels j and width-1-j
                            k = width - 1 - j
                            red, green, blue = row[j, 0], row[j, 1], row[j, 2]
                            row[j, 0], row[j, 1], row[j, 2] = row[k, 0], row[k, 1], row[k, 2]
                            row[k, 0], row[k, 1], row[k, 2] = red, green, blue
            return images

        flip.is_parallel = True
        return flip

    def declare_state_and_memory(self, previous_state):
        return replace(previous_state, jit_mode=True), None
