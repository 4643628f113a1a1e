"""Hashtags to labels: counting, noise filtering, WordNet merging, vocabularies, per-image labels.

Pipeline (the paper's: Mahajan et al., "Exploring the Limits of Weakly Supervised Pretraining",
ECCV 2018, section 2, where hashtags are canonicalized to WordNet synsets and the synonyms of a
synset merge into one label; its vocabularies are 1.5k hashtags from the ImageNet-1k synsets and
17k hashtags from WordNet nouns, ``data.vocab.name`` ``in1k`` and ``wordnet`` here):

1. every image's tags are normalized (:func:`normalize`) and counted once per image
   (:func:`count_tags`; Counters from shards add up);
2. noise tags are dropped (:func:`build_vocabulary`): the stop list (``data.vocab.stop_tags`` plus
   ``extra_stop_tags``), tags on more than ``max_tag_share`` of the images (a tag on a large
   share of a varied corpus says nothing about the picture: ``#photooftheday``), and, when
   per-image categories are given, tags spread nearly uniformly over the categories. Tags that
   name a category (OpenClipart's folders are the transfer target's classes) are dropped by
   WordNet lemma and synset, not by string (:func:`category_name_tags`), and listed with
   their category in the report;
3. the remaining hashtags become labels. ``raw``: each hashtag is its own label (the baseline,
   no WordNet). ``in1k`` / ``wordnet``: each hashtag naming a synset of the set lands on that
   synset (see :mod:`datamodules.lexicon` for the ambiguity rule) and synonyms merge into one
   label named by the canonical hashtag (#brownbear, #ursusarctos -> ``brownbear``);
4. labels seen fewer than ``min_count`` times (summed over their synonyms' image counts) go;
   ``top_k > 0`` keeps the K most frequent. Label ids are by count, descending, ties by name;
5. :meth:`Vocabulary.label` maps an image's raw tags to sorted, deduplicated label ids.

Everything is sorted, so the same inputs give byte-identical ``vocab.tsv`` and report files.
Steps 2 to 4 are :func:`build_vocabulary`'s, one function each in :mod:`datamodules.vocab_build`;
the :class:`Vocabulary` and its ``vocab.tsv`` live in :mod:`datamodules.vocabulary`. This module
holds counting, category names, labelling and lookup, and is where callers import all of them.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from datamodules.data_config import AMBIGUITY_RULES, VOCABS
from datamodules.io import atomic_write_json
from datamodules.lexicon import get_lexicon
from datamodules.tagtext import extract_hashtags, image_tags, normalize, unique_normalized
from datamodules.vocab_build import build_vocabulary, build_vocabulary_from_config, zipf_fit
from datamodules.vocabulary import Vocabulary
from datamodules.wordnet import WordNet, load_wordnet

if TYPE_CHECKING:
    from datamodules.data_config import DataConfig

__all__ = [
    "AMBIGUITY_RULES",
    "VOCABS",
    "Vocabulary",
    "build_vocabulary",
    "build_vocabulary_from_config",
    "category_name_drops",
    "category_name_tags",
    "count_tags",
    "count_tag_categories",
    "explain",
    "extract_hashtags",
    "image_tags",
    "label_all",
    "label_stats",
    "normalize",
    "write_vocabulary",
    "zipf_fit",
]

CATEGORY_NAME_RULE = "wordnet-lemmas-synsets-1"  # what category_name_tags does (a cache key)


# ---- counting --------------------------------------------------------------------------------
def count_tags(tag_lists: Iterable[Iterable[str]]) -> Counter:
    """Images per normalized tag (each tag counted once per image). Shard Counters add up."""
    counts: Counter = Counter()
    for tags in tag_lists:
        counts.update(unique_normalized(tags))
    return counts


def count_tag_categories(
    tag_lists: Iterable[Iterable[str]], categories: Iterable[str | None]
) -> dict[str, Counter]:
    """Normalized tag -> Counter of the categories of the images carrying it (None skipped)."""
    out: dict[str, Counter] = {}
    for tags, category in zip(tag_lists, categories):
        if category is None:
            continue
        for tag in unique_normalized(tags):
            out.setdefault(tag, Counter())[category] += 1
    return out


# ---- category names ----------------------------------------------------------------------
def category_name_tags(
    categories: Iterable[str],
    tag_categories: Mapping[str, Mapping[str, int]],
    wordnet: WordNet | None = None,
) -> dict[str, str]:
    """The tags of a corpus that name one of its image categories: normalized tag -> category.

    A category's *name words* are its name and the words in it (``signs_and_symbols``: also
    ``signs``, ``symbols``; ``and`` is skipped); its *lemmas* are the WordNet noun lemmas those
    words inflect (:meth:`WordNet.morphy`: ``animals`` -> ``animal``); its *synsets* are every
    noun sense of those lemmas. Against ``tag_categories`` (tag -> images per category,
    :func:`count_tag_categories`), a tag names the category when

    - it is a name word, or one of its own lemmas is a lemma of the category (``animal`` and
      ``animals`` for ``animals``; ``tool``, ``tools`` for ``tools``): always; or
    - it is (or inflects) another lemma of one of the category's synsets, a synonym (``beast``,
      ``fauna`` for ``animals``, ``flora`` for ``plants``, ``edifice`` for ``buildings``), and
      that category is the single one holding most of its images. A lemma of a sense the folder
      does not mean mostly tags other folders and stays (``cock``, in tool's vulgar sense,
      tags animals; ``house``, a sense of sign, tags buildings).

    A tag naming several categories is given the first, in sorted order.
    """
    wn = wordnet if wordnet is not None else load_wordnet()
    folders = []  # (category, name words, lemmas, synonyms)
    for category in sorted({c for c in categories if c}):
        words = [category, *(w for w in re.split(r"[\s_\-]+", category) if w and w != "and")]
        lemmas = {lemma for w in words for lemma in wn.morphy(w)}
        names = {normalize(w) for w in words} | {normalize(x) for x in lemmas}
        synonyms = {
            normalize(x) for lemma in lemmas for sid in wn.senses_of(lemma) for x in wn.lemmas(sid)
        }
        folders.append((category, names, lemmas, synonyms - names))
    out: dict[str, str] = {}
    for tag in sorted(tag_categories):
        own = set(wn.morphy(tag))
        forms = {tag} | {normalize(x) for x in own}
        per_category = tag_categories[tag]
        top = max(per_category.values(), default=0)
        leaders = [c for c, n in per_category.items() if n == top]
        for category, names, lemmas, synonyms in folders:
            if tag in names or own & lemmas:
                out[tag] = category
                break
            if forms & synonyms and leaders == [category]:
                out[tag] = category
                break
    return out


def category_name_drops(
    data_cfg: DataConfig,
    tag_lists: Iterable[Iterable[str]],
    categories: Iterable[str | None],
    wordnet: WordNet | None = None,
) -> dict[str, str]:
    """What ``data.vocab.drop_category_names`` drops from a corpus (per-image tags and
    categories, aligned): :func:`category_name_tags` for OpenClipart, whose folders are the
    target classes; ``{}`` for other sources or with the knob off."""
    if not (data_cfg.vocab.drop_category_names and data_cfg.source.name == "openclipart"):
        return {}
    categories = list(categories)
    return category_name_tags(
        categories, count_tag_categories(tag_lists, categories), wordnet=wordnet
    )


# ---- labels and statistics -------------------------------------------------------------------
def label_all(vocab: Vocabulary, tag_lists: Iterable[Iterable[str]]) -> tuple[list[list[int]], int]:
    """Labels of every image, aligned with the input (``[]`` for an image with no label), and
    the number of such unlabelled images, which the caller drops."""
    label = vocab.label
    out = [label(tags) for tags in tag_lists]
    return out, sum(1 for ids in out if not ids)


def label_stats(label_lists: Sequence[Sequence[int]]) -> dict:
    """Labels-per-image histogram (index k = images with k labels), mean over labelled images."""
    sizes = np.fromiter((len(ids) for ids in label_lists), dtype=np.int64, count=len(label_lists))
    hist = np.bincount(sizes) if len(sizes) else np.zeros(1, dtype=np.int64)
    labelled = sizes[sizes > 0]
    return {
        "images": int(len(sizes)),
        "labelled": int(len(labelled)),
        "unlabelled": int(len(sizes) - len(labelled)),
        "mean_labels": round(float(labelled.mean()), 6) if len(labelled) else 0.0,
        "histogram": [int(h) for h in hist],
    }


def write_vocabulary(out_dir: str | Path, vocab: Vocabulary, report: dict) -> tuple[Path, Path]:
    """``vocab.tsv`` and ``vocab_report.json`` in ``out_dir``, each written atomically."""
    out = Path(out_dir)
    return vocab.save(out / "vocab.tsv"), atomic_write_json(out / "vocab_report.json", report)


# ---- lookup ----------------------------------------------------------------------------------
def explain(
    tag: str,
    *,
    vocab: str = "wordnet",
    ambiguity: str = "first_sense",
    stop_tags: Iterable[str] = (),
    wordnet: WordNet | None = None,
) -> dict:
    """What the ``vocab`` lexicon makes of one raw tag: its normalized form, canonical hashtag,
    synset and gloss, or the reason it names nothing (stop tag, not a WordNet noun, ambiguous and
    dropped, outside the vocabulary's synsets). Corpus-independent (no counts, no min_count)."""
    norm = normalize(tag)
    out = {"tag": tag, "normalized": norm, "hashtag": None, "synset": None, "gloss": None}
    if not norm:
        return {**out, "status": "empty"}
    if norm in {normalize(t) for t in stop_tags}:
        return {**out, "status": "stop_tag"}
    if vocab == "raw":
        return {**out, "hashtag": norm, "status": "raw"}
    lexicon = get_lexicon(vocab, ambiguity, wordnet)
    senses = lexicon.senses.get(norm, ())
    sid = lexicon.resolved.get(norm)
    if sid is None:
        return {**out, "status": lexicon.why_not(norm), "senses": len(senses)}
    return {
        **out,
        "hashtag": lexicon.canonical[sid],
        "synset": sid,
        "gloss": lexicon.wordnet.gloss(sid),
        "status": lexicon.status[norm],
        "senses": len(senses),
        "synonyms": list(lexicon.members[sid]),
    }
