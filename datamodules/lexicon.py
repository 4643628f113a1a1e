"""Which WordNet synset a hashtag names, for a given synset set and ambiguity rule.

Every WordNet noun lemma becomes a hashtag (``brown_bear`` -> ``brownbear``) naming its synsets
in WordNet's sense order (index.noun: most frequent sense first). Lemmas that normalize to the
same hashtag (``ice-cream`` / ``ice_cream``) pool their senses by rank: every lemma's first
sense, then every lemma's second sense, ..., each synset once; lemmas in index.noun order.

A vocabulary's *synset set* is where hashtags may land: ``in1k`` = the 1,000 ImageNet-1k
synsets (timm's class list), ``wordnet`` = all 82,115 noun synsets. A hashtag with more than one
noun sense anywhere in WordNet is *ambiguous* (``#crane``: a person, a bird, a machine...):

- ``first_sense`` (default): the first of its senses that lies in the synset set. Usually that
  is WordNet's most frequent sense; when the most frequent sense is outside the set (in ``in1k``,
  ``#bruin`` first means a storybook bear, its second sense is ImageNet's brown bear) the
  hashtag still lands on the set's sense and is counted as ``later_sense``.
- ``drop``: ambiguous hashtags name nothing.

The synsets' hashtags are then merged: one label per synset, named by its *canonical hashtag*:
the normalized first lemma (in the synset's own order) whose hashtag resolves to it. Because a
hashtag resolves to at most one synset, canonical hashtags are unique.
"""

from __future__ import annotations

import functools
import importlib.util
from collections import Counter
from pathlib import Path

from datamodules.data_config import AMBIGUITY_RULES
from datamodules.errors import UserInputError
from datamodules.tagtext import normalize
from datamodules.wordnet import WordNet, load_wordnet

# statuses of a hashtag that names something in the synset set
UNAMBIGUOUS = "unambiguous"
FIRST_SENSE = "first_sense"  # ambiguous, WordNet's first sense is in the set
LATER_SENSE = "later_sense"  # ambiguous, first sense outside the set, a later one inside
AMBIGUOUS_DROPPED = "ambiguous_dropped"  # ambiguous, rule `drop`
# statuses of a hashtag that names nothing
NOT_A_NOUN = "not_a_wordnet_noun"
OUTSIDE = "outside_vocabulary_synsets"


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise UserInputError(f"unknown {name} '{value}'; valid choices: {', '.join(choices)}")


def _timm_info_dir() -> Path:
    """timm's data/_info folder, found without importing timm (which imports torch)."""
    spec = importlib.util.find_spec("timm")
    if spec is None or not spec.submodule_search_locations:
        raise UserInputError("the in1k vocabulary reads timm's ImageNet class list: install timm")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "_info"


@functools.lru_cache(maxsize=1)
def imagenet_synsets() -> tuple[str, ...]:
    """The 1,000 ImageNet-1k synset ids in class-index order (timm's imagenet_synsets.txt)."""
    ids = tuple((_timm_info_dir() / "imagenet_synsets.txt").read_text().split())
    if len(ids) != 1000:
        raise UserInputError(f"timm's imagenet_synsets.txt has {len(ids)} ids, expected 1000")
    return ids


@functools.lru_cache(maxsize=1)
def imagenet_lemmas() -> dict[str, tuple[str, ...]]:
    """ImageNet-1k synset id -> its lemmas as listed in timm's imagenet_synset_to_lemma.txt."""
    wanted = set(imagenet_synsets())
    out = {}
    text = (_timm_info_dir() / "imagenet_synset_to_lemma.txt").read_text(encoding="utf-8")
    for line in text.splitlines():
        sid, _, lemmas = line.partition("\t")
        if sid in wanted:
            out[sid] = tuple(x.strip() for x in lemmas.split(",") if x.strip())
    return out


@functools.lru_cache(maxsize=2)
def hashtag_senses(wordnet: WordNet) -> dict[str, tuple[str, ...]]:
    """Every WordNet noun hashtag -> its synsets in sense order (pooled by rank, see above)."""
    pooled: dict[str, list[tuple[str, ...]]] = {}
    for lemma, senses in wordnet.senses.items():
        tag = normalize(lemma)
        if tag:
            pooled.setdefault(tag, []).append(senses)
    out = {}
    for tag, lists in pooled.items():
        if len(lists) == 1:
            out[tag] = lists[0]
            continue
        merged: dict[str, None] = {}
        for rank in range(max(map(len, lists))):
            for senses in lists:
                if rank < len(senses):
                    merged[senses[rank]] = None
        out[tag] = tuple(merged)
    return out


class Lexicon:
    """Hashtag -> synset resolution for one synset set (``in1k`` or ``wordnet``) and rule."""

    def __init__(self, wordnet: WordNet, vocab: str, ambiguity: str):
        check_choice("vocabulary (data.vocab.name)", vocab, ("in1k", "wordnet"))
        check_choice("ambiguity rule (data.vocab.ambiguity)", ambiguity, AMBIGUITY_RULES)
        self.wordnet, self.vocab, self.ambiguity = wordnet, vocab, ambiguity
        senses = dict(hashtag_senses(wordnet))
        if vocab == "in1k":
            synset_set = frozenset(imagenet_synsets())
            # timm's lemma list matches WordNet's today; a form only timm knows still counts
            for sid, lemmas in imagenet_lemmas().items():
                for lemma in lemmas:
                    tag = normalize(lemma)
                    if tag and sid not in senses.get(tag, ()):
                        senses[tag] = (*senses.get(tag, ()), sid)
        else:
            synset_set = frozenset(wordnet.synsets)
        self.senses = senses
        self.synset_set = synset_set
        self.resolved: dict[str, str] = {}  # hashtag -> synset (hashtags that name something)
        self.status: dict[str, str] = {}  # hashtag -> status, for hashtags with a sense in set
        for tag, tag_senses in senses.items():
            inside = [s for s in tag_senses if s in synset_set]
            if not inside:
                continue
            if len(tag_senses) == 1:
                self.status[tag] = UNAMBIGUOUS
            elif ambiguity == "drop":
                self.status[tag] = AMBIGUOUS_DROPPED
                continue
            else:
                self.status[tag] = FIRST_SENSE if inside[0] == tag_senses[0] else LATER_SENSE
            self.resolved[tag] = inside[0]
        members: dict[str, list[str]] = {}
        for tag, sid in self.resolved.items():
            members.setdefault(sid, []).append(tag)
        self.members = {sid: tuple(sorted(tags)) for sid, tags in members.items()}
        self.canonical = {sid: self.canonical_name(sid) for sid in self.members}

    def canonical_name(self, sid: str, exclude: frozenset[str] | set[str] = frozenset()) -> str:
        """The first lemma of ``sid`` whose hashtag resolves to it and is not in ``exclude``
        (stop tags); else the first such hashtag by name."""
        for lemma in self.wordnet.synsets[sid].lemmas:
            tag = normalize(lemma)
            if self.resolved.get(tag) == sid and tag not in exclude:
                return tag
        return next(t for t in self.members[sid] if t not in exclude)

    def why_not(self, tag: str) -> str:
        """The status of a normalized hashtag that resolves to nothing."""
        if tag in self.status:
            return self.status[tag]
        return OUTSIDE if tag in self.senses else NOT_A_NOUN

    def stats(self) -> dict:
        """Corpus-independent sizes: hashtags naming the set's synsets, before and after merge."""
        status = Counter(self.status.values())
        return {
            "synset_set": len(self.synset_set),
            "hashtags_before_merge": len(self.resolved),
            "synsets_after_merge": len(self.members),
            "synsets_without_hashtag": len(self.synset_set) - len(self.members),
            "ambiguous_hashtags": status[FIRST_SENSE]
            + status[LATER_SENSE]
            + status[AMBIGUOUS_DROPPED],
            "ambiguous_first_sense": status[FIRST_SENSE],
            "ambiguous_later_sense": status[LATER_SENSE],
            "ambiguous_dropped": status[AMBIGUOUS_DROPPED],
        }


@functools.lru_cache(maxsize=8)
def _lexicon(wordnet: WordNet, vocab: str, ambiguity: str) -> Lexicon:
    return Lexicon(wordnet, vocab, ambiguity)


def get_lexicon(
    vocab: str, ambiguity: str = "first_sense", wordnet: WordNet | None = None
) -> Lexicon:
    """The (per-process cached) lexicon of ``vocab`` in {in1k, wordnet} under ``ambiguity``."""
    return _lexicon(wordnet if wordnet is not None else load_wordnet(), vocab, ambiguity)
