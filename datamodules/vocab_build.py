"""A vocabulary from per-tag image counts, step by step (:func:`build_vocabulary`).

1. :func:`check_knobs`: the knobs are valid (one-line errors naming the ``data.*`` key);
2. :func:`normalized_counts`: tags normalized, their image counts added;
3. :func:`drop_noise`: the stop list, tags that name an image category, tags on more than
   ``max_tag_share`` of the images, tags spread nearly uniformly over the categories;
4. :func:`merge_synonyms`: hashtags become labels (``raw``: each its own; ``in1k`` /
   ``wordnet``: the hashtags of one synset merge into one label with a canonical name);
5. :func:`cut_counts`: labels below ``min_count`` go, ``top_k`` keeps the most frequent; ids by
   count, descending, ties by name (an empty result is one error line that says why);
6. :func:`vocabulary_report`: a JSON-able report of every decision.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from datamodules.data_config import AMBIGUITY_RULES, VOCABS
from datamodules.errors import UserInputError
from datamodules.lexicon import (
    LATER_SENSE,
    NOT_A_NOUN,
    OUTSIDE,
    UNAMBIGUOUS,
    Lexicon,
    check_choice,
    get_lexicon,
)
from datamodules.tagtext import normalize
from datamodules.vocabulary import Vocabulary
from datamodules.wordnet import WordNet

if TYPE_CHECKING:
    from datamodules.data_config import VocabConfig

_EXAMPLES = 20  # most frequent examples listed per drop reason in the report


@dataclass
class Noise:
    """What :func:`drop_noise` kept and dropped (normalized tag -> images carrying it)."""

    kept: dict[str, int]
    stop: set[str]  # the stop list, normalized
    named: dict[str, str]  # tag -> the category it names
    stop_list: dict[str, int] = field(default_factory=dict)
    category: dict[str, int] = field(default_factory=dict)  # dropped as a category's name
    max_tag_share: dict[str, int] = field(default_factory=dict)
    spread: dict[str, float] = field(default_factory=dict)  # tag -> its category spread

    @property
    def forbidden(self) -> set[str]:
        """Noise tags: never a synonym or a canonical name."""
        return self.stop | set(self.named) | set(self.max_tag_share) | set(self.spread)


@dataclass
class Merge:
    """Hashtags grouped into labels by :func:`merge_synonyms`."""

    groups: dict[str, dict[str, int]]  # label key (hashtag or synset) -> {hashtag: images}
    names: dict[str, str]  # label key -> canonical hashtag
    lexicon: Lexicon | None = None  # None for ``raw``
    unmatched: dict[str, dict[str, int]] = field(default_factory=dict)  # why not -> {tag: n}
    later_sense: dict[str, int] = field(default_factory=dict)
    ambiguous_seen: int = 0


@dataclass
class Cut:
    """The labels :func:`cut_counts` keeps (``order``, by count) and those it drops."""

    order: list[str]  # label keys
    totals: dict[str, int]  # label key -> summed image counts of its hashtags
    below: dict[str, int]  # canonical name -> total, under min_count
    beyond: dict[str, int]  # canonical name -> total, past top_k


def check_knobs(
    vocab: str,
    ambiguity: str,
    top_k: int,
    min_count: int,
    num_images: int,
    max_tag_share: float,
    max_category_spread: float,
) -> None:
    check_choice("vocabulary (data.vocab.name)", vocab, VOCABS)
    check_choice("ambiguity rule (data.vocab.ambiguity)", ambiguity, AMBIGUITY_RULES)
    if top_k < 0 or min_count < 0 or num_images < 0:
        raise UserInputError(
            "data.vocab.top_k, data.vocab.min_count and the image count must be >= 0"
        )
    if not 0.0 <= max_tag_share <= 1.0 or not 0.0 <= max_category_spread <= 1.0:
        raise UserInputError("data.vocab.max_tag_share and max_category_spread must lie in [0, 1]")


def normalized_counts(counts: Mapping[str, int]) -> Counter:
    """Images per normalized tag: keys normalized, counts of keys that normalize alike added."""
    tag_counts: Counter = Counter()
    for tag, c in counts.items():
        norm = normalize(tag)
        if norm and c > 0:
            tag_counts[norm] += int(c)
    return tag_counts


def _category_spread(cat_counts: Counter, num_categories: int) -> float:
    """Entropy of a tag's category distribution over log(number of corpus categories), 0..1."""
    total = sum(cat_counts.values())
    h = -sum(c / total * math.log(c / total) for c in cat_counts.values() if c)
    return h / math.log(num_categories)


def drop_noise(
    tag_counts: Mapping[str, int],
    num_images: int,
    *,
    stop_tags: Iterable[str],
    max_tag_share: float,
    category_counts: Mapping[str, Counter] | None,
    max_category_spread: float,
    category_names: Mapping[str, str] | None,
) -> Noise:
    """Each tag kept or dropped, for the first reason that applies: stop list, category name,
    more than ``max_tag_share`` of the images, category spread of ``max_category_spread`` or
    more (with per-image categories from more than one category)."""
    noise = Noise(
        kept={},
        stop={normalize(t) for t in stop_tags},
        named={normalize(t): c for t, c in (category_names or {}).items()},
    )
    share_limit = max_tag_share * num_images
    num_categories = 0
    if category_counts and max_category_spread > 0:
        num_categories = len({cat for cc in category_counts.values() for cat in cc})
    for tag, c in tag_counts.items():
        if tag in noise.stop:
            noise.stop_list[tag] = c
        elif tag in noise.named:
            noise.category[tag] = c
        elif 0 < max_tag_share < 1 and c > share_limit:
            noise.max_tag_share[tag] = c
        elif num_categories > 1 and tag in category_counts:
            spread = _category_spread(category_counts[tag], num_categories)
            if spread >= max_category_spread:
                noise.spread[tag] = spread
            else:
                noise.kept[tag] = c
        else:
            noise.kept[tag] = c
    return noise


def merge_synonyms(
    kept: Mapping[str, int],
    vocab: str,
    ambiguity: str,
    wordnet: WordNet | None,
    forbidden: set[str],
) -> Merge:
    """Hashtags -> labels: ``raw`` keeps each hashtag; a synset set (``in1k``, ``wordnet``)
    puts every hashtag on the synset it names (:mod:`datamodules.lexicon`) and names the label
    by its canonical hashtag, never a ``forbidden`` one."""
    if vocab == "raw":
        groups = {tag: {tag: c} for tag, c in kept.items()}
        return Merge(groups, names={tag: tag for tag in groups})
    lexicon = get_lexicon(vocab, ambiguity, wordnet)
    merge = Merge(groups={}, names={}, lexicon=lexicon)
    for tag, c in kept.items():
        sid = lexicon.resolved.get(tag)
        if sid is None:
            merge.unmatched.setdefault(lexicon.why_not(tag), {})[tag] = c
            continue
        merge.groups.setdefault(sid, {})[tag] = c
        status = lexicon.status[tag]
        merge.ambiguous_seen += status != UNAMBIGUOUS
        if status == LATER_SENSE:
            merge.later_sense[tag] = c
    merge.names = {sid: lexicon.canonical_name(sid, forbidden) for sid in merge.groups}
    return merge


def cut_counts(merge: Merge, min_count: int, top_k: int) -> Cut:
    """Labels by summed count (descending, ties by name); those under ``max(min_count, 1)`` go,
    and with ``top_k > 0`` all past the first ``top_k``."""
    groups, names = merge.groups, merge.names
    floor = max(min_count, 1)
    totals = {key: sum(g.values()) for key, g in groups.items()}
    order = sorted(groups, key=lambda key: (-totals[key], names[key]))
    below = {names[k]: totals[k] for k in order if totals[k] < floor}
    order = [k for k in order if totals[k] >= floor]
    beyond = {}
    if top_k > 0 and len(order) > top_k:
        beyond = {names[k]: totals[k] for k in order[top_k:]}
        order = order[:top_k]
    return Cut(order, totals, below, beyond)


def labels(merge: Merge, cut: Cut, forbidden: set[str]) -> Vocabulary:
    """The vocabulary of the kept labels. A synset's synonyms are every hashtag of it, seen in
    the corpus or not, except the noise tags."""
    lexicon, order = merge.lexicon, cut.order
    synonyms = []
    for key in order:
        if lexicon is None:
            synonyms.append((key,))
        else:
            synonyms.append(tuple(t for t in lexicon.members[key] if t not in forbidden))
    return Vocabulary(
        [merge.names[k] for k in order],
        [k if lexicon is not None else "" for k in order],
        synonyms,
        [cut.totals[k] for k in order],
    )


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
    check_knobs(vocab, ambiguity, top_k, min_count, num_images, max_tag_share, max_category_spread)
    tag_counts = normalized_counts(counts)
    noise = drop_noise(
        tag_counts,
        num_images,
        stop_tags=[*stop_tags, *extra_stop_tags],
        max_tag_share=max_tag_share,
        category_counts=category_counts,
        max_category_spread=max_category_spread,
        category_names=category_names,
    )
    forbidden = noise.forbidden
    merge = merge_synonyms(noise.kept, vocab, ambiguity, wordnet, forbidden)
    cut = cut_counts(merge, min_count, top_k)
    if not cut.order:
        dropped = (
            f"{len(noise.stop_list)} stop tags, {len(noise.category)} category names, "
            f"{len(noise.max_tag_share)} on more than "
            f"{max_tag_share:g} of {num_images} images (data.vocab.max_tag_share), {len(noise.spread)} "
            f"spread over categories; {sum(len(u) for u in merge.unmatched.values())} name no "
            f"synset of '{vocab}'; {len(cut.below)} labels below data.vocab.min_count={min_count}"
        )
        raise UserInputError(
            f"the vocabulary is empty: {len(tag_counts)} distinct tags in {num_images} images, "
            f"none left after filtering ({dropped}). Relax data.vocab.min_count / "
            "data.vocab.max_tag_share / data.vocab.stop_tags, or pick another data.vocab.name"
        )
    vocabulary = labels(merge, cut, forbidden)
    params = {
        "ambiguity": ambiguity,
        "top_k": top_k,
        "min_count": min_count,
        "max_tag_share": max_tag_share,
        "max_category_spread": max_category_spread,
        "stop_tags": len(noise.stop),
    }
    report = vocabulary_report(vocabulary, vocab, params, tag_counts, num_images, noise, merge, cut)
    return vocabulary, report


def build_vocabulary_from_config(
    counts: Mapping[str, int], num_images: int, vocab_cfg: VocabConfig, **options: Any
) -> tuple[Vocabulary, dict]:
    """:func:`build_vocabulary` with the knobs of the ``data.vocab`` config section;
    ``options``: its other keywords (``extra_stop_tags``, ``wordnet``, ``category_counts``,
    ``max_category_spread``, ``category_names``)."""
    return build_vocabulary(
        counts,
        num_images,
        vocab=vocab_cfg.name,
        top_k=vocab_cfg.top_k,
        min_count=vocab_cfg.min_count,
        ambiguity=vocab_cfg.ambiguity,
        stop_tags=vocab_cfg.stop_tags,
        max_tag_share=vocab_cfg.max_tag_share,
        **options,
    )


# ---- the report --------------------------------------------------------------------------------
def _top(items: Mapping[str, int], n: int = _EXAMPLES) -> list[list]:
    return [[t, c] for t, c in sorted(items.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]


def _summary(items: Mapping[str, int]) -> dict:
    return {"hashtags": len(items), "occurrences": sum(items.values()), "top": _top(items)}


def vocabulary_report(
    vocabulary: Vocabulary,
    vocab: str,
    params: dict,
    tag_counts: Mapping[str, int],
    num_images: int,
    noise: Noise,
    merge: Merge,
    cut: Cut,
) -> dict:
    """Every decision of the build: the knobs, the corpus, the merge, what each step dropped
    (every noise tag; the most frequent examples of the rest) and the kept counts' Zipf fit."""
    lexicon, unmatched = merge.lexicon, merge.unmatched
    return {
        "vocab": vocab,
        "params": params,
        "corpus": {
            "images": num_images,
            "distinct_tags": len(tag_counts),
            "tag_occurrences": sum(tag_counts.values()),
        },
        "size": len(vocabulary),
        "merge": {
            "hashtags_before_merge": sum(len(merge.groups[k]) for k in cut.order),
            "labels_after_merge": len(vocabulary),
            "hashtags_in_vocab_tsv": sum(len(s) for s in vocabulary.synonyms),
        },
        "lexicon": lexicon.stats() if lexicon is not None else None,
        "ambiguity": {
            "rule": params["ambiguity"],
            "ambiguous_hashtags_in_corpus": merge.ambiguous_seen,
            "resolved_to_later_sense": _summary(merge.later_sense),
            "dropped": _summary(unmatched.get("ambiguous_dropped", {})),
        },
        "dropped": {
            "stop_list": _top(noise.stop_list, len(noise.stop_list)),
            "max_tag_share": _top(noise.max_tag_share, len(noise.max_tag_share)),
            "category_name": [
                [t, noise.named[t], c] for t, c in _top(noise.category, len(noise.category))
            ],
            "category_spread": [
                [t, tag_counts[t], round(s, 6)]
                for t, s in sorted(noise.spread.items(), key=lambda kv: (-kv[1], kv[0]))
            ],
            NOT_A_NOUN: _summary(unmatched.get(NOT_A_NOUN, {})),
            OUTSIDE: _summary(unmatched.get(OUTSIDE, {})),
            "below_min_count": _summary(cut.below),
            "beyond_top_k": _summary(cut.beyond),
        },
        "kept_occurrences": sum(vocabulary.counts),
        "zipf": zipf_fit(vocabulary.counts),
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
