"""Seeded FFCV augmentations: random resized crop and horizontal flip decided by a counter-based
hash of (seed, epoch, sample id), so a run's training images are a pure function of its seed.

FFCV 1.0.2 draws crops (inside the JPEG decoder) and flips from numba's per-thread random
state, which nothing seeds: two runs of one command see different images. Here every random
number is SplitMix64 of a per-sample key, ``sample_key(epoch_key(seed, epoch), sample_id)``,
and a draw counter: draw 0 decides the flip, draws 1, 2, ... feed the crop. The same sample in
the same epoch gets the same crop and flip whichever thread, worker, batch or rank decodes it
(and after a resume), and a different one in every epoch. A consequence: an image drawn twice
in one epoch (weighted sampling draws with replacement) gets the same crop and flip both times.

The epoch reaches the compiled code at run time. Numba freezes global and closure arrays as
constants when it compiles, and a new FFCV ``Loader`` spends seconds compiling, so the key
cannot be a closure value that changes. :class:`EpochKey` owns one uint64 cell; the compiled
operations hold its (fixed) address and load the cell once per batch through a pointer
(:func:`load_key`), the way ``ffcv.utils.cast_int_to_byte_ptr`` turns an address into a
pointer. ``HashtagBatches`` calls :meth:`EpochKey.set_epoch` before it starts each epoch's FFCV
iterator (whose thread start orders the write before every read of that epoch).

``SeededRandomResizedCropRGBImageDecoder`` is FFCV's ``RandomResizedCropRGBImageDecoder`` with
the draws replaced: :func:`random_crop` is FFCV's ``get_random_crop`` line for line (area share
uniform in ``scale``, log aspect ratio uniform in ``log(ratio)``, 10 attempts, then the same
centred fallback), each ``np.random.uniform(lo, hi)`` becoming ``lo + (hi - lo) * u`` with
``u`` the next hashed draw. It runs without fastmath, so the box does not depend on how the
caller was compiled. The hashing adds a few integer multiplies per image: the training
loader's rate did not change (measured with both pipelines in one process, alternating epochs,
224 px crops of 256 px JPEGs: 2,197 vs 2,198 images/s on one thread, 3,968 vs 4,033 on two).

``InPlaceRandomHorizontalFlip``. FFCV 1.0.2's ``RandomHorizontalFlip`` copies every image of
the batch into a new buffer through a strided (reversed) numba slice assignment; on 224 px crops
that costs 0.13 ms per image, about as much as the resize (measured here: training loader 4,560
-> 6,500 images/s on 2 cores without it). This operation flips the chosen images in place with
an RGB pixel-swap loop (0.035 ms per flipped image) and allocates nothing, the way FFCV's own
``Cutout`` modifies its input. With an :class:`EpochKey` it reads the batch's sample indices
(``with_indices``) and flips by the hash; without one it keeps numba's unseeded draws (the
transfer fine-tuning loader, which has no epoch to key on).

Sample ids: the decoder sees the row of the .beton; ``first_sample_id`` (the sample id of row 0:
a train shard's offset in ``ids.txt``) makes the key the ``sample_id`` field's value.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from ffcv.fields.rgb_image import IMAGE_MODES, ResizedCropRGBImageDecoder
from ffcv.libffcv import imdecode, resize_crop
from ffcv.pipeline.compiler import Compiler
from ffcv.pipeline.operation import Operation
from numba import carray, njit, types
from numba.extending import intrinsic

from datamodules.errors import UserInputError

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
# xored into the seed: these streams never coincide with label noise's (datamodules.label_noise)
_SALT = np.uint64(0x243F6A8885A308D3)
_TO_UNIT = 1.0 / 9007199254740992.0  # 2^-53
_U64 = 0xFFFFFFFFFFFFFFFF
FLIP_DRAW = 0  # draw 0 decides the flip; the crop uses draws 1, 2, ...
CROP_ATTEMPTS = 10  # as torchvision's and FFCV's RandomResizedCrop
DEFAULT_RATIO = (3 / 4, 4 / 3)


# --------------------------------------------------------------------------------------------
# the counter-based generator (numba functions; from Python, pass keys as np.uint64: numba
# returns uint64 to Python as a plain int)
# --------------------------------------------------------------------------------------------
@njit(nogil=True)
def mix(x):
    """SplitMix64's finaliser: a bijective, well-mixed uint64 -> uint64 hash (wraps mod 2^64)."""
    x = np.uint64(x)
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


@njit(nogil=True)
def epoch_key(seed, epoch):
    """The key of one (seed, epoch) (uint64 arguments)."""
    return mix(mix(np.uint64(seed) ^ _SALT) + np.uint64(epoch) * _GOLDEN)


@njit(nogil=True)
def sample_key(key, sample_id):
    """The key of one sample in the epoch of ``key``."""
    return mix(np.uint64(key) ^ np.uint64(sample_id))


@njit(nogil=True)
def uniform(sample, draw):
    """Draw number ``draw`` of a sample: a float64 uniform in [0, 1) (SplitMix64's stream)."""
    bits = mix(np.uint64(sample) + np.uint64(draw + 1) * _GOLDEN) >> np.uint64(11)
    return np.float64(bits) * _TO_UNIT


@njit(nogil=True)
def random_crop(height, width, scale_lo, scale_hi, ratio_lo, ratio_hi, sample):
    """``(i, j, h, w)``: FFCV's ``get_random_crop`` with draws 1, 2, ... of ``sample``."""
    height, width = np.int64(height), np.int64(width)
    area = np.float64(height) * np.float64(width)
    log_lo, log_hi = np.log(ratio_lo), np.log(ratio_hi)
    draw = 1
    for _ in range(CROP_ATTEMPTS):
        target_area = area * (scale_lo + (scale_hi - scale_lo) * uniform(sample, draw))
        aspect_ratio = np.exp(log_lo + (log_hi - log_lo) * uniform(sample, draw + 1))
        draw += 2
        w = int(round(np.sqrt(target_area * aspect_ratio)))
        h = int(round(np.sqrt(target_area / aspect_ratio)))
        if 0 < w <= width and 0 < h <= height:
            i = int((height - h + 1) * uniform(sample, draw))
            j = int((width - w + 1) * uniform(sample, draw + 1))
            return i, j, h, w
    in_ratio = np.float64(width) / np.float64(height)
    if in_ratio < ratio_lo:
        w = width
        h = int(round(w / ratio_lo))
    elif in_ratio > ratio_hi:
        h = height
        w = int(round(h * ratio_hi))
    else:
        w = width
        h = height
    return (height - h) // 2, (width - w) // 2, h, w


@intrinsic
def _u64_pointer(typingctx, address):
    """An integer address as a ``uint64*`` (LLVM inttoptr)."""
    if not isinstance(address, types.Integer):
        return None
    sig = types.CPointer(types.uint64)(address)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], context.get_value_type(signature.return_type))

    return sig, codegen


@njit(nogil=True)
def load_key(address):
    """The uint64 stored at ``address`` (an :attr:`EpochKey.address`), read at run time."""
    return carray(_u64_pointer(address), 1)[0]


class EpochKey:
    """The (seed, epoch) key the compiled augmentations read each batch; :meth:`set_epoch`
    before iterating an epoch. Keep the object alive as long as a loader uses it (the
    operations hold it)."""

    def __init__(self, seed: int, epoch: int = 0):
        self.seed = int(seed)
        self._cell = np.zeros(1, dtype=np.uint64)
        self.set_epoch(epoch)

    def set_epoch(self, epoch: int) -> None:
        if int(epoch) < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self.epoch = int(epoch)
        self._cell[0] = epoch_key(np.uint64(self.seed & _U64), np.uint64(self.epoch))

    @property
    def value(self) -> np.uint64:
        return self._cell[0]

    @property
    def address(self) -> int:
        return int(self._cell.ctypes.data)


def check_crop(scale: tuple[float, float], ratio: tuple[float, float]) -> None:
    lo, hi = (float(s) for s in scale)
    if not 0.0 < lo <= hi <= 1.0:
        raise UserInputError(
            f"crop scale ({lo}, {hi}) must satisfy 0 < min <= max <= 1 (data.loading.crop_min_scale)"
        )
    r_lo, r_hi = (float(r) for r in ratio)
    if not 0.0 < r_lo <= r_hi:
        raise ValueError(f"crop ratio ({r_lo}, {r_hi}) must satisfy 0 < min <= max")


# --------------------------------------------------------------------------------------------
# FFCV operations
# --------------------------------------------------------------------------------------------
class SeededRandomResizedCropRGBImageDecoder(ResizedCropRGBImageDecoder):
    """FFCV's random resized crop decoder (scale, ratio and fallback unchanged) with the crop a
    function of (``key``'s seed and epoch, first_sample_id + row)."""

    def __init__(
        self,
        output_size: tuple[int, int],
        key: EpochKey,
        scale: tuple[float, float] = (0.08, 1.0),
        ratio: tuple[float, float] = DEFAULT_RATIO,
        first_sample_id: int = 0,
    ):
        super().__init__(output_size)
        check_crop(scale, ratio)
        self.key, self.first_sample_id = key, int(first_sample_id)
        self.scale, self.ratio = tuple(map(float, scale)), tuple(map(float, ratio))

    @property
    def get_crop_generator(self):
        return random_crop

    def generate_code(self):
        jpg = IMAGE_MODES["jpg"]
        mem_read = self.memory_read
        my_range = Compiler.get_iterator()
        imdecode_c = Compiler.compile(imdecode)
        resize_crop_c = Compiler.compile(resize_crop)
        address, first = self.key.address, self.first_sample_id
        (scale_lo, scale_hi), (ratio_lo, ratio_hi) = self.scale, self.ratio

        def decode(batch_indices, my_storage, metadata, storage_state):
            destination, temp_storage = my_storage
            key = load_key(address)
            for dst_ix in my_range(len(batch_indices)):
                source_ix = batch_indices[dst_ix]
                field = metadata[source_ix]
                image_data = mem_read(field["data_ptr"], storage_state)
                height = np.uint32(field["height"])
                width = np.uint32(field["width"])
                if field["mode"] == jpg:
                    temp_buffer = temp_storage[dst_ix]
                    imdecode_c(
                        image_data,
                        temp_buffer,
                        height,
                        width,
                        height,
                        width,
                        0,
                        0,
                        1,
                        1,
                        False,
                        False,
                    )
                    selected_size = 3 * height * width
                    temp_buffer = temp_buffer.reshape(-1)[:selected_size]
                    temp_buffer = temp_buffer.reshape(height, width, 3)
                else:
                    temp_buffer = image_data.reshape(height, width, 3)
                sample = sample_key(key, np.int64(source_ix) + first)
                i, j, h, w = random_crop(
                    height, width, scale_lo, scale_hi, ratio_lo, ratio_hi, sample
                )
                resize_crop_c(temp_buffer, i, i + h, j, j + w, destination[dst_ix])
            return destination[: len(batch_indices)]

        decode.is_parallel = True
        return decode


class InPlaceRandomHorizontalFlip(Operation):
    """Flip each uint8 RGB (HWC) image of the batch left-right with probability ``flip_prob``:
    by the hash of (``key``, first_sample_id + row) when a key is given, else unseeded."""

    def __init__(
        self, flip_prob: float = 0.5, key: EpochKey | None = None, first_sample_id: int = 0
    ):
        super().__init__()
        self.flip_prob = float(flip_prob)
        self.key, self.first_sample_id = key, int(first_sample_id)

    def generate_code(self):
        my_range = Compiler.get_iterator()
        flip_prob = self.flip_prob

        if self.key is None:

            def flip(images, *_):
                should_flip = np.random.rand(images.shape[0]) < flip_prob
                for i in my_range(images.shape[0]):
                    if should_flip[i]:
                        _mirror(images[i])
                return images

            flip.is_parallel = True
            return flip

        address, first = self.key.address, self.first_sample_id

        def seeded_flip(images, _dst, indices):
            key = load_key(address)
            for i in my_range(images.shape[0]):
                if uniform(sample_key(key, np.int64(indices[i]) + first), FLIP_DRAW) < flip_prob:
                    _mirror(images[i])
            return images

        seeded_flip.is_parallel = True
        seeded_flip.with_indices = True
        return seeded_flip

    def declare_state_and_memory(self, previous_state):
        return replace(previous_state, jit_mode=True), None


@njit(nogil=True)
def _mirror(image):
    """Mirror one HxWx3 uint8 image left-right in place (swap RGB pixels j and width-1-j)."""
    width = image.shape[1]
    for r in range(image.shape[0]):
        row = image[r]
        for j in range(width // 2):
            k = width - 1 - j
            red, green, blue = row[j, 0], row[j, 1], row[j, 2]
            row[j, 0], row[j, 1], row[j, 2] = row[k, 0], row[k, 1], row[k, 2]
            row[k, 0], row[k, 1], row[k, 2] = red, green, blue
