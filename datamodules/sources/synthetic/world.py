"""The synthetic hashtag world: which concepts an image holds and where (Zipf frequencies,
clutter), which hashtags its user attaches (mixed granularity, noise tags), the random
streams of pretraining records and target tasks, and the corpus (the Source API).

Builds on ``concepts`` and ``render``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from datamodules.errors import UserInputError
from datamodules.sources.base import TaggedImage
from datamodules.sources.synthetic.concepts import (
    SHAPES,
    TEXTURES,
    Concept,
    Signature,
    build_concepts,
)
from datamodules.sources.synthetic.render import SCENES, Clutter, Instance, Layout, Renderer

IN_CLASSES = 50  # synthetic_in: concepts spread over the frequency ranks

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


def _zipf_cdf(n: int, s: float) -> np.ndarray:
    p = np.arange(1, n + 1, dtype=np.float64) ** -s
    cdf = np.cumsum(p / p.sum())
    cdf[-1] = 1.0
    return cdf


# --- the world -----------------------------------------------------------------------------------


class SyntheticWorld:
    """Concepts, their tag model and frequencies, and the renderer. Records come from
    :meth:`record` (pretraining stream) and :meth:`target` (target task streams)."""

    def __init__(self, num_concepts: int = 300, zipf_exponent: float = 1.0, image_size: int = 64):
        if zipf_exponent < 0:
            raise UserInputError(f"data.source.zipf_exponent={zipf_exponent} must be >= 0")
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
            raise UserInputError(
                f"data.source.num_images={num_images} must be >= 1 for data.source.name=synthetic"
            )
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
