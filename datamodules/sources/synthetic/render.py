"""Drawing the synthetic world's images with numpy: scene backgrounds, concept instances
with their signatures' shape, colour and texture, untagged clutter, and pixel noise.

Builds on ``concepts`` (shapes, textures, signatures); ``world`` decides what to draw.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from datamodules.errors import UserInputError
from datamodules.sources.synthetic.concepts import SHAPES, TEXTURES, Concept, Signature

# scene kind -> its tag (a WordNet noun lemma); background generators below
SCENES = ("sky", "sunset", "sea", "grass", "beach", "snow", "forest", "wall", "night", "room")


def _hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    h = (h % 1.0) * 6.0
    i = int(h) % 6
    f = h - int(h)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    rgb = ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))[i]
    return np.array(rgb, dtype=np.float32)


# --- rendering -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instance:
    concept: int  # index into the world's concepts (= Zipf rank)
    cx: float  # center, in [-1, 1] image coordinates
    cy: float
    radius: float  # half-size, in the same units (the image spans 2)
    angle: float
    jitter: tuple[float, float, float]  # hue shift, saturation and value factors


@dataclass(frozen=True)
class Clutter:
    """An untagged plain shape of random look, behind the objects or in front of them."""

    instance: Instance  # concept -1
    look: Signature
    in_front: bool


@dataclass(frozen=True)
class Layout:
    """Everything about one image except its pixel noise: what is where, and its tags."""

    scene: int
    instances: tuple[Instance, ...]
    tags: tuple[str, ...]
    clutter: tuple[Clutter, ...] = ()


class Renderer:
    """Vectorized numpy drawing at one image size: precomputed grids and noise banks."""

    def __init__(self, size: int):
        if size < 8:
            raise UserInputError(f"data.source.image_size={size} is too small (use >= 8)")
        self.size = size
        lin = (np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1  # pixel centers in [-1, 1]
        self.ys, self.xs = lin[:, None], lin[None, :]
        self.y01, self.x01 = (self.ys + 1) / 2, (self.xs + 1) / 2
        bank = np.random.default_rng(12345)
        n = 2 * size
        self.fine_noise = bank.standard_normal((n, n, 3)).astype(np.float32)
        coarse = bank.standard_normal((n // 8 + 2, n // 8 + 2, 3)).astype(np.float32)
        up = np.kron(coarse, np.ones((8, 8, 1), np.float32))[:n, :n]
        self.smooth_noise = (
            up + np.roll(up, 4, 0) + np.roll(up, 4, 1) + np.roll(up, (4, 4), (0, 1))
        ) / 2

    def _crop(self, bank: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        oy, ox = rng.integers(0, self.size, 2)
        return bank[oy : oy + self.size, ox : ox + self.size]

    # backgrounds: float32 HxWx3 in [0, 1]
    def background(self, scene: int, rng: np.random.Generator) -> np.ndarray:
        j = (rng.random(3).astype(np.float32) - 0.5) * 0.12
        y, x, s = self.y01, self.x01, self.size
        name = SCENES[scene]
        if name in ("sky", "sunset"):
            top, bot = (
                ((0.3, 0.55, 0.92), (0.78, 0.88, 1.0))
                if name == "sky"
                else ((0.35, 0.18, 0.45), (1.0, 0.62, 0.25))
            )
            top, bot = np.array(top, np.float32) + j, np.array(bot, np.float32) + j
            img = top + (bot - top) * y[..., None] * np.ones((1, s, 1), np.float32)
        elif name == "sea":
            phase = rng.random() * 6.283
            wave = np.sin(6.283 * (5 * y + 0.25 * np.sin(6.283 * 2 * x + phase)))
            img = np.array((0.1, 0.35, 0.6), np.float32) + j + 0.08 * wave[..., None]
        elif name in ("grass", "beach", "snow"):
            base, amp = {
                "grass": ((0.25, 0.55, 0.2), 0.1),
                "beach": ((0.86, 0.76, 0.55), 0.05),
                "snow": ((0.92, 0.94, 0.98), 0.03),
            }[name]
            noise = self._crop(self.fine_noise, rng)[..., :1] + 0.5 * self._crop(
                self.smooth_noise, rng
            )
            img = np.array(base, np.float32) + j + amp * noise
        elif name == "forest":
            freq, phase = 4 + 4 * rng.random(), rng.random() * 6.283
            trunks = np.sin(6.283 * freq * x + phase) * np.ones((s, 1), np.float32)
            img = np.array((0.1, 0.3, 0.12), np.float32) + j + 0.09 * trunks[..., None]
        elif name == "wall":
            rows = 5 + int(4 * rng.random())
            row = np.floor(y * rows)
            bx = (x * rows / 2 + 0.5 * (row % 2)) % 1.0
            mortar = ((y * rows) % 1.0 < 0.12) | (bx < 0.06)
            img = np.where(
                mortar[..., None], np.float32(0.8), np.array((0.62, 0.25, 0.18), np.float32) + j
            )
        elif name == "night":
            stars = (self._crop(self.fine_noise, rng)[..., :1] > 2.2).astype(np.float32)
            img = np.array((0.03, 0.04, 0.13), np.float32) + j / 3 + 0.8 * stars
        else:  # room: wall above, floor below a horizon
            horizon = 0.55 + 0.2 * rng.random()
            wall = _hsv_to_rgb(rng.random(), 0.25, 0.85)
            floor = np.array((0.45, 0.3, 0.18), np.float32) + j
            img = np.where((y > horizon)[..., None], floor, wall) * np.ones((1, s, 1), np.float32)
        out = np.empty((s, s, 3), np.float32)
        out[...] = img
        return out

    def draw(self, img: np.ndarray, inst: Instance, sig: Signature) -> None:
        """Alpha-composite one concept instance onto ``img`` (in place), inside its bounding box."""
        s = self.size
        ax = math.sqrt(sig.aspect)
        ay = 1.0 / ax
        reach = inst.radius * max(ax, ay) * 1.05 + 2.0 / s
        y0 = max(0, int((inst.cy - reach + 1) / 2 * s))
        y1 = min(s, int((inst.cy + reach + 1) / 2 * s) + 1)
        x0 = max(0, int((inst.cx - reach + 1) / 2 * s))
        x1 = min(s, int((inst.cx + reach + 1) / 2 * s) + 1)
        if y0 >= y1 or x0 >= x1:
            return
        dy, dx = self.ys[y0:y1] - inst.cy, self.xs[:, x0:x1] - inst.cx
        c, sn = math.cos(inst.angle), math.sin(inst.angle)
        u = (dx * c + dy * sn) / (inst.radius * ax)
        v = (dy * c - dx * sn) / (inst.radius * ay)
        g = _shape_level(SHAPES[sig.shape], u, v, sig.spikes)
        alpha = np.clip((1.0 - g) * (inst.radius * s / 2) + 0.5, 0.0, 1.0)
        dh, fs, fv = inst.jitter
        c1 = _hsv_to_rgb(sig.hue + dh, min(1.0, sig.sat * fs), min(1.0, sig.val * fv))
        c2 = _hsv_to_rgb(sig.hue2 + dh, sig.sat2, sig.val2)
        tex = TEXTURES[sig.texture]
        ca, sa = math.cos(sig.tex_angle), math.sin(sig.tex_angle)
        w = 3.14159 * sig.tex_freq
        if tex == "plain":
            m = np.clip(0.5 - 0.5 * v, 0.0, 1.0) * 0.5  # soft shading towards the secondary colour
        elif tex == "stripes":
            m = 0.5 + 0.5 * np.sin(w * (u * ca + v * sa))
        elif tex == "checks":
            m = 0.5 + 0.5 * np.sin(w * (u * ca + v * sa)) * np.sin(w * (v * ca - u * sa))
        else:  # dots
            m = (np.cos(w * u) * np.cos(w * v) > 0.4).astype(np.float32)
        m = (m * (sig.tex_amount * alpha))[..., None]
        a = alpha[..., None] - m
        win = img[y0:y1, x0:x1]
        win *= 1.0 - alpha[..., None]
        win += a * c1 + m * c2

    def render(
        self, layout: Layout, concepts: Sequence[Concept], rng: np.random.Generator
    ) -> np.ndarray:
        img = self.background(layout.scene, rng)
        for item in layout.clutter:
            if not item.in_front:
                self.draw(img, item.instance, item.look)
        for inst in layout.instances:
            self.draw(img, inst, concepts[inst.concept].signature)
        for item in layout.clutter:
            if item.in_front:
                self.draw(img, item.instance, item.look)
        sigma = rng.random() * 0.05
        img += sigma * self._crop(self.fine_noise, rng)
        return (np.clip(img, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


def _shape_level(shape: str, u: np.ndarray, v: np.ndarray, spikes: int) -> np.ndarray:
    """A level function: < 1 inside the shape, growing roughly like distance outside."""
    if shape == "ellipse":
        return np.sqrt(u * u + v * v)
    if shape == "rectangle":
        return np.maximum(np.abs(u), np.abs(v)) * 1.15
    if shape == "diamond":
        return np.abs(u) + np.abs(v)
    if shape == "triangle":  # equilateral, pointing up, circumradius 1
        return np.maximum(np.maximum(v, 0.866 * u - 0.5 * v), -0.866 * u - 0.5 * v) * 2.0
    if shape == "cross":
        au, av = np.abs(u), np.abs(v)
        return np.minimum(np.maximum(au * 3.0, av), np.maximum(au, av * 3.0))
    rho = np.sqrt(u * u + v * v)
    if shape == "ring":
        return np.abs(rho - 0.7) / 0.3
    # star
    return rho / (0.6 + 0.35 * np.cos(spikes * np.arctan2(v, u)))
