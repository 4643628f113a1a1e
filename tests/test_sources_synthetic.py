"""The synthetic hashtag world: determinism, Zipf frequencies, WordNet-shaped looks, targets."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from datamodules.errors import UserInputError
from datamodules.sources import load_target, open_source
from datamodules.sources import synthetic as syn
from datamodules.sources.synthetic import (
    SCENES,
    SHAPES,
    SyntheticCorpus,
    SyntheticWorld,
    get_world,
    noise_words,
)
from experiments.config import DataConfig, SourceConfig

SIZE = 32
MEAN_INSTANCES = float(np.dot(syn.INSTANCE_COUNTS, syn.INSTANCE_PROBS))


@pytest.fixture(scope="module")
def world():
    return get_world(300, 1.0, SIZE)


def test_records_are_deterministic_and_seeds_differ(world):
    a, b = world.record(0, 17), world.record(0, 17)
    assert a.source_id == "synthetic:0:17"
    assert a.tags == b.tags and np.array_equal(a.pixels, b.pixels)
    assert a.pixels.shape == (SIZE, SIZE, 3) and a.pixels.dtype == np.uint8
    # a separately built world (same concepts, new renderer) gives the same record
    other = SyntheticWorld(300, 1.0, SIZE)
    assert np.array_equal(other.record(0, 17).pixels, a.pixels)
    # other seeds and other indices give other images
    assert not np.array_equal(world.record(1, 17).pixels, a.pixels)
    assert not np.array_equal(world.record(0, 18).pixels, a.pixels)
    tags0 = [world.tags(0, i) for i in range(200)]
    tags1 = [world.tags(1, i) for i in range(200)]
    assert sum(x != y for x, y in zip(tags0, tags1)) > 150


def test_fast_tags_match_rendered_records(world):
    for i in range(20):
        assert world.tags(3, i) == world.record(3, i).tags


@pytest.mark.parametrize("exponent", [1.0, 0.6])
def test_concept_frequencies_follow_the_zipf_exponent(exponent):
    w = get_world(300, exponent, SIZE)
    counts = np.zeros(len(w.concepts))
    for i in range(20000):
        for c in w.concepts_of(0, i):
            counts[c] += 1
    ranks = np.arange(1, 101)  # concept index = Zipf rank; the top 100 have >= ~50 draws each
    slope = np.polyfit(np.log(ranks), np.log(counts[:100]), 1)[0]
    assert abs(-slope - exponent) < 0.1
    assert counts.sum() / 20000 == pytest.approx(MEAN_INSTANCES, rel=0.02)


def test_tags_mix_granularity_noise_and_omissions(world):
    concepts = world.concepts
    leaf_tags = {t for c in concepts for t in c.lemmas}
    ancestor_tags = {t for c in concepts for level in c.ancestor_tags for t in level}
    noise = set(noise_words())
    n = 3000
    tag_lists = [world.tags(0, i) for i in range(n)]
    flat = [t for tags in tag_lists for t in tags]
    assert all(t == t.lower() and "_" not in t and " " not in t for t in flat)
    per_image = {
        "leaf": sum(t in leaf_tags for t in flat) / n,
        "ancestor": sum(t in ancestor_tags - leaf_tags for t in flat) / n,
        "noise": sum(t in noise for t in flat) / n,
        "scene": sum(t in SCENES for t in flat) / n,
    }
    # expectations from the tag model (a few duplicates are merged, hence the tolerance)
    tagged = MEAN_INSTANCES * (1 - syn.P_OMIT)
    expected = {
        "leaf": tagged * syn.P_LEAF,
        "ancestor": tagged * (1 - syn.P_LEAF + syn.P_EXTRA_ANCESTOR),
        "noise": syn.MEAN_NOISE_TAGS,
        "scene": syn.P_SCENE_TAG,
    }
    for key, value in expected.items():
        assert per_image[key] == pytest.approx(value, rel=0.1), key
    # some images carry no concept tag at all (every instance's tag omitted)
    no_concept = sum(
        not any(t in leaf_tags or t in ancestor_tags for t in tags) for tags in tag_lists
    )
    assert 0.05 < no_concept / n < 0.35
    assert len(noise) > 100 and {"photooftheday", "tbt", "love"} <= noise


def test_visual_signatures_follow_wordnet(world):
    """Siblings (same parent) share shape and colour far more often than random concept pairs."""
    concepts = world.concepts

    def hue_gap(a, b):
        d = abs(a.signature.hue - b.signature.hue)
        return min(d, 1 - d)

    pairs = list(itertools.combinations(concepts, 2))
    siblings = [(a, b) for a, b in pairs if a.chain[-2] == b.chain[-2]]
    assert len(siblings) >= 100  # concepts come in sibling clusters
    same_shape_sib = np.mean([a.signature.shape == b.signature.shape for a, b in siblings])
    same_shape_all = np.mean([a.signature.shape == b.signature.shape for a, b in pairs])
    assert same_shape_sib == 1.0 and same_shape_all < 0.3
    assert np.mean([hue_gap(a, b) for a, b in siblings]) < 0.06
    assert np.mean([hue_gap(a, b) for a, b in pairs]) > 0.15
    assert len({c.signature.shape for c in concepts}) == len(SHAPES)


def test_instances_tilt_and_clutter_is_untagged_and_drawn_after_the_tags(world):
    """Instances tilt up to about 60 degrees either way; 0-2 clutter shapes per image, plain and
    of no concept; the clutter is drawn after the tags, so the tags are those of a layout
    without it, and it shows in the pixels."""
    rng = np.random.default_rng(0)
    angles = [world._instance(0, rng, 1, centered=True).angle for _ in range(400)]
    assert max(np.abs(angles)) <= syn.MAX_TILT and np.ptp(angles) > 1.8 * syn.MAX_TILT
    layouts = [world.layout(world.rng(1, syn.PRETRAIN_STREAM, k)) for k in range(300)]
    clutter = [c for lay in layouts for c in lay.clutter]
    assert {len(lay.clutter) for lay in layouts} == {0, 1, 2}
    assert all(c.instance.concept == -1 for c in clutter)
    assert {c.look.texture for c in clutter} == {syn.TEXTURES.index("plain")}
    assert 0.15 < np.mean([c.in_front for c in clutter]) < 0.35
    busy = next(k for k, lay in enumerate(layouts) if lay.clutter)
    lay = layouts[busy]
    bare = syn.Layout(lay.scene, lay.instances, lay.tags)
    assert world.record(1, busy).tags == lay.tags
    assert not np.array_equal(
        world.renderer.render(lay, world.concepts, np.random.default_rng(5)),
        world.renderer.render(bare, world.concepts, np.random.default_rng(5)),
    )


def test_corpus_is_lazy_sharded_and_any_size():
    cfg = DataConfig(source=SourceConfig(name="synthetic", num_images=2_000_000, image_size=SIZE))
    corpus = open_source(cfg)
    assert len(corpus) == 2_000_000
    last = corpus[len(corpus) - 1]
    assert last.source_id == "synthetic:0:1999999" and last.pixels.shape == (SIZE, SIZE, 3)
    small = DataConfig(source=SourceConfig(name="synthetic", num_images=10, image_size=SIZE))
    shards = [open_source(small, k, 3) for k in range(3)]
    ids = [r.source_id for s in shards for r in s[:]]
    assert sorted(ids) == sorted(r.source_id for r in open_source(small)[:])
    assert len(set(ids)) == 10
    assert shards[1].tags(0) == shards[1][0].tags
    with pytest.raises(UserInputError, match="num_images"):
        SyntheticCorpus(get_world(300, 1.0, SIZE), 0, 0)


@pytest.mark.parametrize(
    "name, num_classes", [("synthetic_in", 50), ("synthetic_fine", 20), ("synthetic_scene", 10)]
)
def test_targets_classes_shapes_and_no_leakage(world, name, num_classes):
    ds = load_target(name, image_size=SIZE, seed=0, cache_dir="", max_per_class=3)
    assert len(ds.classes) == num_classes == len(set(ds.classes))
    assert len(ds.train) == len(ds.val) == 3 * num_classes
    assert np.bincount(ds.train.labels).tolist() == [3] * num_classes
    img, label = ds.train[num_classes + 1]
    assert img.shape == (SIZE, SIZE, 3) and img.dtype == np.uint8 and label == 1
    again = load_target(name, image_size=SIZE, seed=0, cache_dir="", max_per_class=3)
    assert np.array_equal(again.val[5][0], ds.val[5][0])
    # train, val and pretraining images come from different streams
    pre = {world.record(0, i).pixels.tobytes() for i in range(len(ds.train))}
    tr = {ds.train[i][0].tobytes() for i in range(len(ds.train))}
    va = {ds.val[i][0].tobytes() for i in range(len(ds.val))}
    assert not (pre & tr) and not (tr & va)


def test_fine_task_is_one_subtree(world):
    fine = [world.concepts[i] for i in world.fine_classes]
    assert all("n01503061" in c.chain for c in fine)  # bird.n.01
    assert "bird" in {t for c in fine for level in c.ancestor_tags for t in level}


def test_bad_settings_are_user_errors():
    with pytest.raises(UserInputError, match="synthetic_concepts"):
        get_world(1, 1.0, SIZE)
    with pytest.raises(UserInputError, match="zipf_exponent"):
        get_world(300, -1.0, SIZE)
