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

The code is split one job per module, imports flowing one way: ``concepts`` (the synsets and
their visual signatures) -> ``render`` (numpy drawing) -> ``world`` (layouts, tags, random
streams, targets, the corpus). Their public names are re-exported here.
"""

from datamodules.sources.synthetic.concepts import (
    CLUSTER,
    DOMAINS,
    FINE_CLASSES,
    FINE_ROOT,
    SHAPES,
    TEXTURES,
    Concept,
    Signature,
    build_concepts,
    hashtag_form,
)
from datamodules.sources.synthetic.render import SCENES, Clutter, Instance, Layout, Renderer
from datamodules.sources.synthetic.world import (
    CLUTTER_COUNTS,
    IN_CLASSES,
    INSTANCE_COUNTS,
    INSTANCE_PROBS,
    MAX_TILT,
    MEAN_NOISE_TAGS,
    P_CLUTTER_IN_FRONT,
    P_EXTRA_ANCESTOR,
    P_FIRST_LEMMA,
    P_LEAF,
    P_OMIT,
    P_SCENE_TAG,
    PRETRAIN_STREAM,
    TARGET_TASKS,
    SyntheticCorpus,
    SyntheticWorld,
    get_world,
    noise_words,
)

__all__ = [
    "CLUSTER",
    "DOMAINS",
    "FINE_CLASSES",
    "FINE_ROOT",
    "IN_CLASSES",
    "SHAPES",
    "TEXTURES",
    "SCENES",
    "PRETRAIN_STREAM",
    "TARGET_TASKS",
    "P_OMIT",
    "P_LEAF",
    "P_EXTRA_ANCESTOR",
    "P_FIRST_LEMMA",
    "P_SCENE_TAG",
    "MEAN_NOISE_TAGS",
    "INSTANCE_COUNTS",
    "INSTANCE_PROBS",
    "MAX_TILT",
    "CLUTTER_COUNTS",
    "P_CLUTTER_IN_FRONT",
    "Concept",
    "Signature",
    "Instance",
    "Clutter",
    "Layout",
    "Renderer",
    "SyntheticWorld",
    "SyntheticCorpus",
    "build_concepts",
    "get_world",
    "hashtag_form",
    "noise_words",
]
