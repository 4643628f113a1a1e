"""The concepts of the synthetic world: WordNet leaf synsets that appear in images, and the
visual signature each inherits along its hypernym path (see the package docstring).

Depends on nothing else in the package; ``render`` and ``world`` build on it.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from datamodules.errors import UserInputError

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

SHAPES = ("ellipse", "rectangle", "triangle", "star", "ring", "cross", "diamond")
TEXTURES = ("plain", "stripes", "checks", "dots")

_GOOD_LEMMA = re.compile(r"^[a-z][a-z_]*$")


def hashtag_form(lemma: str) -> str:
    """How a person types a WordNet lemma as a hashtag: ``Golden_Retriever`` -> ``goldenretriever``."""
    return lemma.lower().replace("_", "").replace("-", "").replace("'", "").replace(".", "")


def _u(key: str) -> float:
    """A deterministic uniform number in [0, 1) for a string key."""
    return int.from_bytes(hashlib.sha1(key.encode()).digest()[:8], "big") / 2**64


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
        raise UserInputError(
            f"data.source.synthetic_concepts={num_concepts}: need at least 2 concepts"
        )
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
                f"data.source.synthetic_concepts={num_concepts} is more than WordNet offers under "
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
