"""The vocabulary: label ids 0..V-1, each a canonical hashtag, and its ``vocab.tsv`` file.

Built by :func:`datamodules.vocab_build.build_vocabulary`; :meth:`Vocabulary.label` maps an
image's raw tags to sorted, deduplicated label ids. ``vocab.tsv`` lists every label in id order
(``id``, canonical ``hashtag``, ``synset``, ``synonyms``, ``count``); its SHA-256 identifies the
vocabulary in manifests.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from pathlib import Path

from datamodules.errors import UserInputError
from datamodules.io import atomic_write_bytes
from datamodules.tagtext import normalize

TSV_HEADER = "id\thashtag\tsynset\tsynonyms\tcount"
_RAW_CACHE_LIMIT = 2_000_000  # raw tag spellings remembered by Vocabulary.label


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
