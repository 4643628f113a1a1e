"""A synthetic hashtag world on the real WordNet noun hierarchy.

Why: hashtag pretraining is only interesting when tags are noisy, mixed in granularity and
Zipf-distributed, and when visual similarity follows the label hierarchy. This world has all
four, at any size, with nothing stored: record ``i`` is a pure function of ``(seed, i)``.

* **Concepts**: ``num_concepts`` WordNet leaf synsets under animal, artifact, (solid) food and
  plant, chosen deterministically in sibling clusters (up to 4 leaves of one parent), plus a
  fine-grained block of bird species (the ``synthetic_fine`` task, CUB-like). A concept's first
  lemma must name it unambiguously (its first WordNet sense), so a WordNet vocabulary can map
  its hashtag back.
* **Visual signature** inherited along the hypernym path: the shape family comes from an
  ancestor three levels up, the base colour is a random walk from the domain root down (large
  steps high in the tree, small at the leaf), aspect and texture kind from the parent and
  grandparent, texture frequency/orientation and the secondary colour at the leaf. Siblings
  look alike; cousins less; different domains differ.
* **Images**: 1-3 concept instances (random place, scale, tilt up to about 60 degrees either way,
  colour jitter) on one of 10 scene backgrounds (sky, sea, grass, ...), among 0-2 untagged
  clutter shapes (plain, of random shape and colour; a quarter of them in front of the objects,
  occluding them), with pixel noise. Rendering is vectorized numpy on precomputed grids, each
  shape only inside its bounding box. The clutter and the wider tilt make the world hungrier
  for data: in a one-seed pilot (README, "The paper's findings at mini scale") they lowered the
  random-init probe by 3.5 points and the 8,000-image pretraining by 2.2, keeping its lead over
  250 images.
* **Tags**: per instance, omitted with probability 0.25, else a lemma of the leaf or, less often,
  of an ancestor (mixed granularity, synonyms included); concept frequency ~ rank^-s; plus
  Zipf-distributed non-visual noise tags (``photooftheday``, ``tbt``, ...) and sometimes the
  scene's name.
* **Targets** (``synthetic_in``, ``synthetic_fine``, ``synthetic_scene``) come from separate
  random streams, so their images never coincide with pretraining images.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from datamodules.errors import UserInputError
from datamodules.sources.base import TaggedImage

# --- WordNet access: one swappable function ------------------------------------------------------


def _wordnet():
    from datamodules.wordnet import load_wordnet

    return load_wordnet()


# WordNet 3.0 noun synset ids (wnid form) of the four visual domains and their concept shares.
DOMAINS = (
    ("n00015388", 0.35),  # animal.n.01
    ("n00021939", 0.35),  # artifact.n.01
    ("n07555863", 0.15),  # food.n.02 (solid food)
    ("n00017222", 0.15),  # plant.n.02
)
FINE_ROOT = "n01503061"  # bird.n.01: the synthetic_fine subtree
FINE_CLASSES = 20
CLUSTER = 4  # leaves taken per parent: concepts come in sibling clusters
IN_CLASSES = 50  # synthetic_in: concepts spread over the frequency ranks

SHAPES = ("ellipse", "rectangle", "triangle", "star", "ring", "cross", "diamond")
TEXTURES = ("plain", "stripes", "checks", "dots")
# scene kind -> its tag (a WordNet noun lemma); background generators below
SCENES = ("sky", "sunset", "sea", "grass", "beach", "snow", "forest", "wall", "night", "room")

# stream ids: pretraining records and each target task/split use disjoint random streams
PRETRAIN_STREAM = 0
TARGET_TASKS = ("synthetic_in", "synthetic_fine", "synthetic_scene")

# tag model
P_OMIT = 0.25  # an instance contributes no tag
P_LEAF = 0.6  # given a tag, it names the leaf (else an ancestor, nearer ones likelier)
P_EXTRA_ANCESTOR = 0.15  # the instance is also tagged with one ancestor
P_FIRST_LEMMA = 0.7  # the synset's first lemma (else one of its synonyms)
P_SCENE_TAG = 0.2
MEAN_NOISE_TAGS = 1.5
INSTANCE_COUNTS = (1, 2, 3)
INSTANCE_PROBS = (0.5, 0.3, 0.2)
MAX_TILT = 1.05  # radians (about 60 degrees): an instance is tilted by up to this either way
CLUTTER_COUNTS = (0, 1, 2)  # untagged plain shapes per image, equally likely
P_CLUTTER_IN_FRONT = 0.25  # a clutter shape occludes the objects (else it lies behind them)

_GOOD_LEMMA = re.compile(r"^[a-z][a-z_]*$")

_NOISE_BASE = (
    "photooftheday love instagood tbt picoftheday follow like4like instadaily nofilter happy "
    "fun beautiful cute me selfie friends family summer weekend mood vibes goodtimes tagsforlikes "
    "followme smile repost bestoftheday style life lifestyle throwback amazing awesome "
    "instalike igers photo photography nature travel art weekendvibes mondaymotivation "
    "blessed inspiration goals"
).split()
_NOISE_AFFIXES = (("", "oftheday"), ("insta", ""), ("", "life"), ("", "lover"), ("my", ""))


def noise_words() -> tuple[str, ...]:
    """Non-visual hashtags in Zipf rank order: 46 common ones, then generated variants
    (``naturelife``, ``instatravel``, ...), each once."""
    out: dict[str, None] = dict.fromkeys(_NOISE_BASE)
    for pre, suf in _NOISE_AFFIXES:
        for w in _NOISE_BASE[:30]:
            out[f"{pre}{w}{suf}"] = None
    return tuple(out)


def hashtag_form(lemma: str) -> str:
    """How a person types a WordNet lemma as a hashtag: ``Golden_Retriever`` -> ``goldenretriever``."""
    return lemma.lower().replace("_", "").replace("-", "").replace("'", "").replace(".", "")


def _u(key: str) -> float:
    """A deterministic uniform number in [0, 1) for a string key."""
    return int.from_bytes(hashlib.sha1(key.encode()).digest()[:8], "big") / 2**64


def _zipf_cdf(n: int, s: float) -> np.ndarray:
    p = np.arange(1, n + 1, dtype=np.float64) ** -s
    cdf = np.cumsum(p / p.sum())
    cdf[-1] = 1.0
    return cdf


def _hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    h = (h % 1.0) * 6.0
    i = int(h) % 6
    f = h - int(h)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    rgb = ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))[i]
    return np.array(rgb, dtype=np.float32)


# --- concepts and their visual signatures --------------------------------------------------------


@dataclass(frozen=True)
class Signature:
    """The visual traits of a concept (all derived from its hypernym path)."""

    shape: int  # index into SHAPES
    hue: float
    sat: float
    val: float
    hue2: float  # secondary (texture) colour
    sat2: float
    val2: float
    texture: int  # index into TEXTURES
    tex_freq: float  # cycles across the object
    tex_angle: float  # radians
    tex_amount: float  # 0..1 blend of the secondary colour
    aspect: float  # width / height
    size: float  # relative object size
    spikes: int  # star points


@dataclass(frozen=True)
class Concept:
    """A leaf synset of the world: its hashtag lemmas, its path and its look."""

    id: str  # wnid, e.g. n02110958
    name: str  # first lemma as in WordNet
    lemmas: tuple[str, ...]  # hashtag forms of its lemmas (first = most common)
    chain: tuple[str, ...]  # domain root ... parent, leaf (wnids)
    ancestor_tags: tuple[tuple[str, ...], ...]  # hashtag lemmas of chain[:-1], nearest first
    signature: Signature


def _signature(chain: tuple[str, ...]) -> Signature:
    """Traits inherited along ``chain`` (domain root first, leaf last)."""
    n = len(chain)
    leaf, parent = chain[-1], chain[max(0, n - 2)]
    grandparent, shape_anc = chain[max(0, n - 3)], chain[max(1, n - 4)] if n > 1 else chain[0]
    # colour: random walk down the tree, steps shrink towards the leaf
    hue, sat, val = _u(chain[0] + ":hue"), 0.55 + 0.3 * _u(chain[0] + ":sat"), 0.75
    for k, sid in enumerate(chain[1:], start=1):
        dist = n - 1 - k  # 0 at the leaf
        step = (0.05, 0.1, 0.18)[dist] if dist < 3 else 0.3
        hue += (_u(sid + ":hue") - 0.5) * 2 * step
        sat += (_u(sid + ":sat") - 0.5) * step
        val += (_u(sid + ":val") - 0.5) * step
    sat, val = float(np.clip(sat, 0.35, 1.0)), float(np.clip(val, 0.35, 0.95))
    hue2 = hue + 0.25 + 0.5 * _u(parent + ":hue2") + 0.1 * (_u(leaf + ":hue2") - 0.5)
    return Signature(
        shape=int(_u(shape_anc + ":shape") * len(SHAPES)),
        hue=hue % 1.0,
        sat=sat,
        val=val,
        hue2=hue2 % 1.0,
        sat2=0.3 + 0.7 * _u(leaf + ":sat2"),
        val2=0.2 + 0.8 * _u(leaf + ":val2"),
        texture=int(_u(parent + ":tex") * len(TEXTURES)),
        tex_freq=1.5 + 2.5 * _u(parent + ":freq") + 1.5 * _u(leaf + ":freq"),
        tex_angle=float(np.pi * _u(leaf + ":angle")),
        tex_amount=0.45 + 0.55 * _u(leaf + ":amount"),
        aspect=float(
            np.exp(0.9 * (_u(grandparent + ":aspect") - 0.5) + 0.3 * (_u(leaf + ":aspect") - 0.5))
        ),
        size=0.8 + 0.4 * _u(grandparent + ":size"),
        spikes=4 + int(4 * _u(parent + ":spikes")),
    )


def _children(wn) -> dict[str, list[str]]:
    kids: dict[str, list[str]] = defaultdict(list)
    for sid, syn in wn.synsets.items():
        for h in syn.hypernyms:
            kids[h].append(sid)
    return kids


def _descendants(kids: dict[str, list[str]], root: str) -> list[str]:
    seen: dict[str, None] = {}
    stack = [root]
    while stack:
        for c in kids.get(stack.pop(), ()):
            if c not in seen:
                seen[c] = None
                stack.append(c)
    return list(seen)


def _good_leaf(wn, kids, sid: str) -> bool:
    """A leaf whose first lemma is a plain lowercase word naming it first (unambiguous tag)."""
    if kids.get(sid):
        return False
    lemma = wn.lemmas(sid)[0]
    if not _GOOD_LEMMA.match(lemma) or len(hashtag_form(lemma)) > 20:
        return False
    senses = wn.senses_of(lemma)
    return bool(senses) and senses[0] == sid


def _pick_clustered(wn, kids, root: str, quota: int, taken: set[str], names: set[str]) -> list[str]:
    """``quota`` good leaves under ``root``, up to CLUSTER per parent, parents in hash order."""
    by_parent: dict[str, list[str]] = defaultdict(list)
    for sid in _descendants(kids, root):
        if sid not in taken and _good_leaf(wn, kids, sid):
            by_parent[wn.hypernyms(sid)[0]].append(sid)
    families = sorted(
        (p for p, v in by_parent.items() if len(v) >= 3), key=lambda p: _u(p + ":fam")
    )
    out: list[str] = []
    for fam in families:
        for sid in sorted(by_parent[fam], key=lambda s: _u(s + ":pick"))[:CLUSTER]:
            name = hashtag_form(wn.lemmas(sid)[0])
            if len(out) < quota and name not in names:
                out.append(sid)
                names.add(name)
        if len(out) >= quota:
            break
    return out


def _chain(wn, sid: str, root: str) -> tuple[str, ...]:
    for path in wn.hypernym_paths(sid):
        if root in path:
            return tuple(path[path.index(root) :])
    return (sid,)


def _lemma_tags(wn, sid: str) -> tuple[str, ...]:
    tags = dict.fromkeys(
        hashtag_form(lemma) for lemma in wn.lemmas(sid) if _GOOD_LEMMA.match(lemma)
    )
    return tuple(t for t in tags if t)


@functools.lru_cache(maxsize=8)
def build_concepts(num_concepts: int) -> tuple[tuple[Concept, ...], tuple[str, ...]]:
    """The world's concepts in Zipf rank order (most frequent first), and the wnids of the
    fine-grained (bird) block. Deterministic: depends only on ``num_concepts`` and WordNet."""
    if num_concepts < 2:
        raise UserInputError(f"data.synthetic_concepts={num_concepts}: need at least 2 concepts")
    wn = _wordnet()
    kids = _children(wn)
    taken: set[str] = set()
    names: set[str] = set()
    n_fine = min(FINE_CLASSES, max(2, num_concepts // 10))
    fine = _pick_clustered(wn, kids, FINE_ROOT, n_fine, taken, names)
    taken.update(fine)
    roots = {sid: DOMAINS[0][0] for sid in fine}
    rest = num_concepts - len(fine)
    quotas = [int(round(share * rest)) for _, share in DOMAINS]
    quotas[0] += rest - sum(quotas)
    for (root, _), quota in zip(DOMAINS, quotas):
        picked = _pick_clustered(wn, kids, root, quota, taken, names)
        if len(picked) < quota:
            raise UserInputError(
                f"data.synthetic_concepts={num_concepts} is more than WordNet offers under "
                f"{wn.lemmas(root)[0]} ({len(picked)} usable leaves); use fewer concepts"
            )
        taken.update(picked)
        roots.update(dict.fromkeys(picked, root))
    concepts = []
    for sid in sorted(roots, key=lambda s: _u(s + ":rank")):
        chain = _chain(wn, sid, roots[sid])
        concepts.append(
            Concept(
                id=sid,
                name=wn.lemmas(sid)[0],
                lemmas=_lemma_tags(wn, sid),
                chain=chain,
                ancestor_tags=tuple(_lemma_tags(wn, a) for a in reversed(chain[:-1])),
                signature=_signature(chain),
            )
        )
    return tuple(concepts), tuple(fine)


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
            raise UserInputError(f"data.image_size={size} is too small (use >= 8)")
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


# --- the world -----------------------------------------------------------------------------------


class SyntheticWorld:
    """Concepts, their tag model and frequencies, and the renderer. Records come from
    :meth:`record` (pretraining stream) and :meth:`target` (target task streams)."""

    def __init__(self, num_concepts: int = 300, zipf_exponent: float = 1.0, image_size: int = 64):
        if zipf_exponent < 0:
            raise UserInputError(f"data.zipf_exponent={zipf_exponent} must be >= 0")
        self.concepts, fine_ids = build_concepts(num_concepts)
        self.zipf_exponent = zipf_exponent
        self.cdf = _zipf_cdf(len(self.concepts), zipf_exponent)
        index = {c.id: i for i, c in enumerate(self.concepts)}
        self.fine_classes = tuple(
            sorted((index[s] for s in fine_ids), key=lambda i: self.concepts[i].name)
        )
        step = max(1, len(self.concepts) // IN_CLASSES)
        self.in_classes = tuple(range(0, len(self.concepts), step))[:IN_CLASSES]
        self.noise_words = noise_words()
        self.noise_cdf = _zipf_cdf(len(self.noise_words), 1.0)
        self.renderer = Renderer(image_size)

    # tags ---------------------------------------------------------------------------------------
    def _tags_for(
        self, inst_concepts: Sequence[int], scene: int, rng: np.random.Generator
    ) -> tuple[str, ...]:
        tags: dict[str, None] = {}
        for ci in inst_concepts:
            c = self.concepts[ci]
            if rng.random() < P_OMIT:
                continue
            tags[self._name(c, rng, leaf=rng.random() < P_LEAF)] = None
            if rng.random() < P_EXTRA_ANCESTOR:
                tags[self._name(c, rng, leaf=False)] = None
        if rng.random() < P_SCENE_TAG:
            tags[SCENES[scene]] = None
        for _ in range(rng.poisson(MEAN_NOISE_TAGS)):
            tags[
                self.noise_words[int(np.searchsorted(self.noise_cdf, rng.random(), side="right"))]
            ] = None
        tags.pop("", None)
        order = list(tags)
        rng.shuffle(order)
        return tuple(order)

    def _name(self, c: Concept, rng: np.random.Generator, leaf: bool) -> str:
        lemmas = c.lemmas
        if not leaf and c.ancestor_tags:
            # level up: 1 with prob 1/2, 2 with 1/4, ... capped at the domain root
            up = min(int(rng.geometric(0.5)), len(c.ancestor_tags))
            lemmas = c.ancestor_tags[up - 1] or c.lemmas
        if len(lemmas) == 1 or rng.random() < P_FIRST_LEMMA:
            return lemmas[0]
        return lemmas[1 + int(rng.integers(len(lemmas) - 1))]

    # layouts ------------------------------------------------------------------------------------
    def _sample_concept(self, rng: np.random.Generator) -> int:
        return int(np.searchsorted(self.cdf, rng.random(), side="right"))

    def _instance(self, concept: int, rng: np.random.Generator, n: int, centered: bool) -> Instance:
        r = rng.random(6)
        sig = self.concepts[concept].signature
        radius = (0.35 + 0.3 * r[0]) * sig.size / (1 + 0.35 * (n - 1))
        spread = 0.15 if centered else 0.85 - radius
        return Instance(
            concept=concept,
            cx=float((r[1] * 2 - 1) * spread),
            cy=float((r[2] * 2 - 1) * spread),
            radius=float(radius),
            angle=float((2 * r[3] - 1) * MAX_TILT),
            jitter=(
                float((r[4] - 0.5) * 0.06),
                float(0.85 + 0.3 * r[5]),
                float(0.85 + 0.3 * rng.random()),
            ),
        )

    @staticmethod
    def _clutter(rng: np.random.Generator) -> tuple[Clutter, ...]:
        """0-2 untagged plain shapes of random shape, hue, aspect and pose."""
        out = []
        for _ in range(CLUTTER_COUNTS[int(rng.integers(len(CLUTTER_COUNTS)))]):
            r = rng.random(12)  # r[10:] unused, kept: the committed mini results drew 12
            in_front = bool(r[0] < P_CLUTTER_IN_FRONT)
            radius = (0.08 + 0.12 * r[1]) if in_front else (0.12 + 0.23 * r[1])
            look = Signature(
                shape=int(r[2] * len(SHAPES)),
                hue=float(r[3]),
                sat=0.7,
                val=0.8,
                hue2=float(r[4]),
                sat2=0.5,
                val2=0.5,
                texture=TEXTURES.index("plain"),
                tex_freq=2.0,
                tex_angle=0.0,
                tex_amount=0.5,
                aspect=float(np.exp(1.2 * (r[5] - 0.5))),
                size=1.0,
                spikes=4 + int(4 * r[6]),
            )
            x, y, angle = 1.7 * r[7] - 0.85, 1.7 * r[8] - 0.85, 2 * np.pi * r[9]
            pose = Instance(-1, float(x), float(y), float(radius), float(angle), (0.0, 1.0, 1.0))
            out.append(Clutter(pose, look, in_front))
        return tuple(out)

    def layout(self, rng: np.random.Generator) -> Layout:
        """A pretraining image's content: 1-3 Zipf-drawn concepts on a random scene among
        clutter, and tags (the clutter is drawn after the tags: it never changes them)."""
        n = int(rng.choice(INSTANCE_COUNTS, p=INSTANCE_PROBS))
        scene = int(rng.integers(len(SCENES)))
        concepts = [self._sample_concept(rng) for _ in range(n)]
        instances = tuple(self._instance(c, rng, n, centered=False) for c in concepts)
        tags = self._tags_for(concepts, scene, rng)
        return Layout(scene, instances, tags, self._clutter(rng))

    @staticmethod
    def rng(seed: int, stream: int, i: int) -> np.random.Generator:
        return np.random.default_rng([seed, stream, i])

    def concepts_of(self, seed: int, i: int) -> tuple[int, ...]:
        """Concept indices (Zipf ranks) of pretraining record ``i``, without rendering."""
        return tuple(
            inst.concept for inst in self.layout(self.rng(seed, PRETRAIN_STREAM, i)).instances
        )

    def tags(self, seed: int, i: int) -> tuple[str, ...]:
        """Tags of pretraining record ``i``, without rendering (same as ``record(seed, i).tags``)."""
        return self.layout(self.rng(seed, PRETRAIN_STREAM, i)).tags

    def record(self, seed: int, i: int) -> TaggedImage:
        """Pretraining record ``i``: a pure function of ``(seed, i)``."""
        rng = self.rng(seed, PRETRAIN_STREAM, i)
        lay = self.layout(rng)
        pixels = self.renderer.render(lay, self.concepts, rng)
        return TaggedImage(f"synthetic:{seed}:{i}", lay.tags, None, None, pixels)

    # targets ------------------------------------------------------------------------------------
    def target_classes(self, task: str) -> list[str]:
        if task == "synthetic_in":
            return [self.concepts[i].name for i in self.in_classes]
        if task == "synthetic_fine":
            return [self.concepts[i].name for i in self.fine_classes]
        if task == "synthetic_scene":
            return list(SCENES)
        raise UserInputError(
            f"unknown synthetic target '{task}'; choose one of {', '.join(TARGET_TASKS)}"
        )

    def target(self, task: str, split: int, seed: int, i: int) -> tuple[np.ndarray, int]:
        """Image ``i`` of a target task split (0 train, 1 val) and its label; classes cycle
        with ``i`` so every prefix is balanced. Streams are disjoint from pretraining."""
        num = len(self.target_classes(task))
        label = i % num
        stream = 1 + 2 * TARGET_TASKS.index(task) + split
        rng = self.rng(seed, stream, i)
        if task == "synthetic_scene":
            n = int(rng.integers(0, 3))
            instances = tuple(
                self._instance(self._sample_concept(rng), rng, n + 1, centered=False)
                for _ in range(n)
            )
            lay = Layout(label, instances, (), self._clutter(rng))
        else:
            concept = (self.in_classes if task == "synthetic_in" else self.fine_classes)[label]
            lay = Layout(
                int(rng.integers(len(SCENES))),
                (self._instance(concept, rng, 1, centered=True),),
                (),
                self._clutter(rng),
            )
        return self.renderer.render(lay, self.concepts, rng), label


@functools.lru_cache(maxsize=4)
def get_world(num_concepts: int, zipf_exponent: float, image_size: int) -> SyntheticWorld:
    """A cached world (building concepts reads WordNet: ~3 s once per process)."""
    return SyntheticWorld(num_concepts, zipf_exponent, image_size)


class SyntheticCorpus(Sequence):
    """The pretraining corpus: a lazy sequence of ``num_images`` records (rendered on access).

    Shard ``k`` of ``n`` holds global indices ``k, k + n, k + 2n, ...``: disjoint, covering, and
    nothing to enumerate (hashing ids would need the whole catalogue).
    """

    def __init__(
        self, world: SyntheticWorld, seed: int, num_images: int, shard: int = 0, num_shards: int = 1
    ):
        if num_images < 1:
            raise UserInputError(f"data.num_images={num_images} must be >= 1 for source=synthetic")
        if not 0 <= shard < num_shards:
            raise UserInputError(f"shard {shard} is out of range for num_shards={num_shards}")
        self.world, self.seed = world, seed
        self.indices = range(shard, num_images, num_shards)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, j):
        if isinstance(j, slice):
            return [self[k] for k in range(*j.indices(len(self)))]
        return self.world.record(self.seed, self.indices[j])

    def tags(self, j: int) -> tuple[str, ...]:
        """Tags of item ``j`` without rendering pixels (vocabulary building, frequency tests)."""
        return self.world.tags(self.seed, self.indices[j])
