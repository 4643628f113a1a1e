"""Hashtags to labels: counting, noise filtering, WordNet merging, vocabularies, per-image labels.

Pipeline (the paper's, section "Data" of PAPER.md):

1. every image's tags are normalized (:func:`normalize`) and counted once per image
   (:func:`count_tags`; Counters from shards add up);
2. noise tags are dropped (:func:`build_vocabulary`): the stop list (``data.stop_tags`` plus
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
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from datamodules.errors import UserInputError
from datamodules.io import atomic_write_bytes, atomic_write_json
from datamodules.lexicon import (
    AMBIGUITY_RULES,
    LATER_SENSE,
    NOT_A_NOUN,
    OUTSIDE,
    UNAMBIGUOUS,
    VOCABS,
    check_choice,
    get_lexicon,
)
from datamodules.tagtext import extract_hashtags, image_tags, normalize, unique_normalized
from datamodules.wordnet import WordNet, load_wordnet

if TYPE_CHECKING:
    from experiments.config import DataConfig

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

TSV_HEADER = "id\thashtag\tsynset\tsynonyms\tcount"
_RAW_CACHE_LIMIT = 2_000_000  # raw tag spellings remembered by Vocabulary.label
_EXAMPLES = 20  # most frequent examples listed per drop reason in the report
CATEGORY_NAME_RULE = "wordnet-lemmas-synsets-1"  # what category_name_tags does (a cache key)


class Vocabulary:
    """Label ids 0..V-1, each a canonical hashtag with its synset, synonyms and corpus count.

    ``hashtags[i]`` canonical hashtag; ``synsets[i]`` WordNet id (``''`` for ``raw``);
    ``synonyms[i]`` every normalized hashtag that maps to label ``i`` (sorted, includes the
    canonical one); ``counts[i]`` summed image counts of those hashtags in the corpus.
    """

    def __init__(
        self,
        hashtags: Sequence[str],
        synsets: Sequence[str],
        synonyms: Sequence[Sequence[str]],
        counts: Sequence[int],
    ):
        if not len(hashtags) == len(synsets) == len(synonyms) == len(counts):
            raise ValueError("hashtags, synsets, synonyms and counts must have one entry per label")
        self.hashtags = list(hashtags)
        self.synsets = list(synsets)
        self.synonyms = [tuple(s) for s in synonyms]
        self.counts = [int(c) for c in counts]
        index: dict[str, int] = {}
        for i, (name, syns) in enumerate(zip(self.hashtags, self.synonyms)):
            for tag in (name, *syns):
                if normalize(tag) != tag or not tag:
                    raise UserInputError(f"label {i}: '{tag}' is not a normalized hashtag")
                if index.setdefault(tag, i) != i:
                    raise UserInputError(
                        f"hashtag '{tag}' maps to two labels ({index[tag]} and {i}); "
                        "a vocabulary needs each hashtag on one label"
                    )
        self._index = index
        # raw spelling -> id or -1; seeded with the normalized forms (normalize is idempotent)
        self._cache: dict[str, int] = dict(index)

    def __len__(self) -> int:
        return len(self.hashtags)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.to_tsv() == other.to_tsv()

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} labels, {len(self._index)} hashtags)"

    def id_of(self, tag: str) -> int | None:
        """The label id of one raw tag, or None."""
        i = self._index.get(normalize(tag), -1)
        return None if i < 0 else i

    def label(self, tags: Iterable[str]) -> list[int]:
        """Sorted, deduplicated label ids of one image's raw tags (unknown tags ignored)."""
        if isinstance(tags, str):
            raise TypeError("label() takes a list of tags; use extract_hashtags() on a caption")
        cache = self._cache
        out = []
        for tag in tags:  # the hot loop: one dict lookup per tag once a spelling was seen
            i = cache.get(tag)
            if i is None:
                i = self._index.get(normalize(tag), -1)
                if len(cache) < _RAW_CACHE_LIMIT:
                    cache[tag] = i
            if i >= 0:
                out.append(i)
        return sorted(set(out)) if len(out) > 1 else out

    # ---- vocab.tsv ---------------------------------------------------------------------------
    def to_tsv(self) -> str:
        lines = [TSV_HEADER]
        for i, (name, sid, syns, count) in enumerate(
            zip(self.hashtags, self.synsets, self.synonyms, self.counts)
        ):
            lines.append(f"{i}\t{name}\t{sid}\t{','.join(sorted(syns))}\t{count}")
        return "\n".join(lines) + "\n"

    @property
    def sha256(self) -> str:
        """SHA-256 of the vocab.tsv bytes: identifies the vocabulary in manifests."""
        return hashlib.sha256(self.to_tsv().encode("utf-8")).hexdigest()

    def save(self, path_tsv: str | Path) -> Path:
        return atomic_write_bytes(path_tsv, self.to_tsv().encode("utf-8"))

    @classmethod
    def load(cls, path_tsv: str | Path) -> Vocabulary:
        path = Path(path_tsv)
        if not path.is_file():
            raise UserInputError(
                f"vocabulary file {path} not found (build one with `python -m experiments vocab`)"
            )
        lines = path.read_text(encoding="utf-8").splitlines()
        if not lines or lines[0] != TSV_HEADER:
            raise UserInputError(f"{path}: not a vocab.tsv (first line must be '{TSV_HEADER}')")
        names, sids, syns, counts = [], [], [], []
        for n, line in enumerate(lines[1:], start=2):
            parts = line.split("\t")
            if len(parts) != 5 or parts[0] != str(n - 2) or not parts[4].isdigit():
                raise UserInputError(
                    f"{path}:{n}: expected 'id<TAB>hashtag<TAB>synset<TAB>"
                    f"synonyms<TAB>count' with id {n - 2}, got {line!r}"
                )
            names.append(parts[1])
            sids.append(parts[2])
            syns.append(tuple(parts[3].split(",")) if parts[3] else ())
            counts.append(int(parts[4]))
        return cls(names, sids, syns, counts)


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
    """What ``data.drop_category_names`` drops from a corpus (per-image tags and categories,
    aligned): :func:`category_name_tags` for OpenClipart, whose folders are the target
    classes; ``{}`` for other sources or with the knob off."""
    if not (data_cfg.drop_category_names and data_cfg.source == "openclipart"):
        return {}
    categories = list(categories)
    return category_name_tags(
        categories, count_tag_categories(tag_lists, categories), wordnet=wordnet
    )


# ---- building --------------------------------------------------------------------------------
def _top(items: Mapping[str, int], n: int = _EXAMPLES) -> list[list]:
    return [[t, c] for t, c in sorted(items.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]


def _summary(items: Mapping[str, int]) -> dict:
    return {"hashtags": len(items), "occurrences": sum(items.values()), "top": _top(items)}


def _category_spread(cat_counts: Counter, num_categories: int) -> float:
    """Entropy of a tag's category distribution over log(number of corpus categories), 0..1."""
    total = sum(cat_counts.values())
    h = -sum(c / total * math.log(c / total) for c in cat_counts.values() if c)
    return h / math.log(num_categories)


def build_vocabulary(
    counts: Mapping[str, int],
    num_images: int,
    *,
    vocab: str = "wordnet",
    top_k: int = 0,
    min_count: int = 1,
    ambiguity: str = "first_sense",
    stop_tags: Iterable[str] = (),
    max_tag_share: float = 0.0,
    extra_stop_tags: Iterable[str] = (),
    wordnet: WordNet | None = None,
    category_counts: Mapping[str, Counter] | None = None,
    max_category_spread: float = 0.0,
    category_names: Mapping[str, str] | None = None,
) -> tuple[Vocabulary, dict]:
    """A vocabulary from per-tag image counts, and a JSON-able report of every decision.

    ``counts``: normalized tag -> number of images carrying it (:func:`count_tags`; other keys
    are normalized here and their counts added). ``max_tag_share`` in (0, 1): tags on more
    than that share of ``num_images`` are noise (0 disables). ``category_counts`` (optional,
    :func:`count_tag_categories`) with ``max_category_spread`` in (0, 1]: tags whose category
    entropy is at least that fraction of the maximum (log of the number of categories) are
    non-visual (0 disables). ``category_names`` (tag -> category, :func:`category_name_tags`):
    tags that name a category; dropped, and reported as ``dropped.category_name`` rows
    ``[tag, category, images]``. Like the stop tags they are never a synonym or a canonical
    name. A label's count is the sum of its synonyms' image counts (an image with both
    #brownbear and #bruin adds 2); it must reach ``max(min_count, 1)``.
    """
    check_choice("vocabulary (data.vocab)", vocab, VOCABS)
    check_choice("ambiguity rule (data.ambiguity)", ambiguity, AMBIGUITY_RULES)
    if top_k < 0 or min_count < 0 or num_images < 0:
        raise UserInputError("data.top_k, data.min_count and the image count must be >= 0")
    if not 0.0 <= max_tag_share <= 1.0 or not 0.0 <= max_category_spread <= 1.0:
        raise UserInputError("data.max_tag_share and max_category_spread must lie in [0, 1]")

    tag_counts: Counter = Counter()
    for tag, c in counts.items():
        norm = normalize(tag)
        if norm and c > 0:
            tag_counts[norm] += int(c)

    # -- noise ---------------------------------------------------------------------------------
    stop = {normalize(t) for t in stop_tags} | {normalize(t) for t in extra_stop_tags}
    named = {normalize(t): c for t, c in (category_names or {}).items()}
    dropped: dict[str, dict[str, int]] = {"stop_list": {}, "max_tag_share": {}, "category": {}}
    spread_drops: dict[str, float] = {}
    share_limit = max_tag_share * num_images
    num_categories = 0
    if category_counts and max_category_spread > 0:
        num_categories = len({cat for cc in category_counts.values() for cat in cc})
    kept: dict[str, int] = {}
    for tag, c in tag_counts.items():
        if tag in stop:
            dropped["stop_list"][tag] = c
        elif tag in named:
            dropped["category"][tag] = c
        elif 0 < max_tag_share < 1 and c > share_limit:
            dropped["max_tag_share"][tag] = c
        elif num_categories > 1 and tag in category_counts:
            spread = _category_spread(category_counts[tag], num_categories)
            if spread >= max_category_spread:
                spread_drops[tag] = spread
            else:
                kept[tag] = c
        else:
            kept[tag] = c

    # -- hashtags -> labels --------------------------------------------------------------------
    forbidden = stop | set(named) | set(dropped["max_tag_share"]) | set(spread_drops)
    unmatched: dict[str, dict[str, int]] = {}
    groups: dict[str, dict[str, int]] = {}  # label key (hashtag or synset) -> {hashtag: count}
    later_sense: dict[str, int] = {}
    ambiguous_seen = 0
    lexicon = None
    if vocab == "raw":
        groups = {tag: {tag: c} for tag, c in kept.items()}
        names = {tag: tag for tag in groups}
    else:
        lexicon = get_lexicon(vocab, ambiguity, wordnet)
        for tag, c in kept.items():
            sid = lexicon.resolved.get(tag)
            if sid is None:
                unmatched.setdefault(lexicon.why_not(tag), {})[tag] = c
                continue
            groups.setdefault(sid, {})[tag] = c
            status = lexicon.status[tag]
            ambiguous_seen += status != UNAMBIGUOUS
            if status == LATER_SENSE:
                later_sense[tag] = c
        names = {sid: lexicon.canonical_name(sid, forbidden) for sid in groups}

    floor = max(min_count, 1)
    totals = {key: sum(g.values()) for key, g in groups.items()}
    order = sorted(groups, key=lambda key: (-totals[key], names[key]))
    below = {names[k]: totals[k] for k in order if totals[k] < floor}
    order = [k for k in order if totals[k] >= floor]
    beyond = {}
    if top_k > 0 and len(order) > top_k:
        beyond = {names[k]: totals[k] for k in order[top_k:]}
        order = order[:top_k]
    noise_summary = (
        f"{len(dropped['stop_list'])} stop tags, {len(dropped['category'])} category names, "
        f"{len(dropped['max_tag_share'])} on more than "
        f"{max_tag_share:g} of {num_images} images (data.max_tag_share), {len(spread_drops)} "
        f"spread over categories; {sum(len(u) for u in unmatched.values())} name no synset of "
        f"'{vocab}'; {len(below)} labels below data.min_count={min_count}"
    )
    if not order:
        raise UserInputError(
            f"the vocabulary is empty: {len(tag_counts)} distinct tags in {num_images} images, "
            f"none left after filtering ({noise_summary}). Relax data.min_count / "
            "data.max_tag_share / data.stop_tags, or pick another data.vocab"
        )

    synonyms = []
    for key in order:
        if lexicon is None:
            synonyms.append((key,))
        else:  # every hashtag of the synset, seen or not, except the noise tags
            synonyms.append(tuple(t for t in lexicon.members[key] if t not in forbidden))
    vocabulary = Vocabulary(
        [names[k] for k in order],
        [k if lexicon is not None else "" for k in order],
        synonyms,
        [totals[k] for k in order],
    )
    seen_hashtags = sum(len(groups[k]) for k in order)
    report = {
        "vocab": vocab,
        "params": {
            "ambiguity": ambiguity,
            "top_k": top_k,
            "min_count": min_count,
            "max_tag_share": max_tag_share,
            "max_category_spread": max_category_spread,
            "stop_tags": len(stop),
        },
        "corpus": {
            "images": num_images,
            "distinct_tags": len(tag_counts),
            "tag_occurrences": sum(tag_counts.values()),
        },
        "size": len(vocabulary),
        "merge": {
            "hashtags_before_merge": seen_hashtags,
            "labels_after_merge": len(vocabulary),
            "hashtags_in_vocab_tsv": sum(len(s) for s in vocabulary.synonyms),
        },
        "lexicon": lexicon.stats() if lexicon is not None else None,
        "ambiguity": {
            "rule": ambiguity,
            "ambiguous_hashtags_in_corpus": ambiguous_seen,
            "resolved_to_later_sense": _summary(later_sense),
            "dropped": _summary(unmatched.get("ambiguous_dropped", {})),
        },
        "dropped": {
            "stop_list": _top(dropped["stop_list"], len(dropped["stop_list"])),
            "max_tag_share": _top(dropped["max_tag_share"], len(dropped["max_tag_share"])),
            "category_name": [
                [t, named[t], c] for t, c in _top(dropped["category"], len(dropped["category"]))
            ],
            "category_spread": [
                [t, tag_counts[t], round(s, 6)]
                for t, s in sorted(spread_drops.items(), key=lambda kv: (-kv[1], kv[0]))
            ],
            NOT_A_NOUN: _summary(unmatched.get(NOT_A_NOUN, {})),
            OUTSIDE: _summary(unmatched.get(OUTSIDE, {})),
            "below_min_count": _summary(below),
            "beyond_top_k": _summary(beyond),
        },
        "kept_occurrences": sum(vocabulary.counts),
        "zipf": zipf_fit(vocabulary.counts),
    }
    return vocabulary, report


def build_vocabulary_from_config(
    counts: Mapping[str, int],
    num_images: int,
    data_cfg: DataConfig,
    *,
    extra_stop_tags: Iterable[str] = (),
    wordnet: WordNet | None = None,
    category_counts: Mapping[str, Counter] | None = None,
    max_category_spread: float = 0.0,
    category_names: Mapping[str, str] | None = None,
) -> tuple[Vocabulary, dict]:
    """:func:`build_vocabulary` with the knobs of the ``data`` config section."""
    return build_vocabulary(
        counts,
        num_images,
        vocab=data_cfg.vocab,
        top_k=data_cfg.top_k,
        min_count=data_cfg.min_count,
        ambiguity=data_cfg.ambiguity,
        stop_tags=data_cfg.stop_tags,
        max_tag_share=data_cfg.max_tag_share,
        extra_stop_tags=extra_stop_tags,
        wordnet=wordnet,
        category_counts=category_counts,
        max_category_spread=max_category_spread,
        category_names=category_names,
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


def zipf_fit(counts: Sequence[int]) -> dict | None:
    """Least-squares fit of log(count) = c - s log(rank) over the ranked counts: s is the Zipf
    exponent (1 for the classic law). None with fewer than two distinct ranks."""
    values = np.sort(np.asarray([c for c in counts if c > 0], dtype=np.float64))[::-1]
    if len(values) < 2:
        return None
    x = np.log(np.arange(1, len(values) + 1))
    y = np.log(values)
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (slope * x + intercept)
    ss_tot = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float((residual**2).sum()) / ss_tot if ss_tot > 0 else 1.0
    return {"exponent": round(float(-slope), 6), "r2": round(r2, 6), "ranks": len(values)}


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
