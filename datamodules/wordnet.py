"""WordNet 3.0 nouns read straight from the Debian ``wordnet-base`` files.

Two files are read: ``data.noun`` (one synset per line: lemmas, pointers, gloss) and
``index.noun`` (one lemma per line: its synsets in WordNet's sense order, most frequent first);
``noun.exc`` (irregular plurals: ``geese goose``), when present, feeds :meth:`WordNet.morphy`.
Synset ids use the ImageNet "wnid" form: ``'n' + 8-digit offset`` (``n01440764`` is the tench),
so ImageNet class lists and WordNet meet without a lookup table.

The parsed :class:`WordNet` is cached once per process (keyed by the files' path, size and
modification time), so every caller can simply call :func:`load_wordnet`.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from datamodules.errors import UserInputError

DEFAULT_WORDNET_DIR = "/usr/share/wordnet"
WORDNET_DIR_ENV = "WORDNET_DIR"  # environment override of the directory
_FILES = ("data.noun", "index.noun")
_EXCEPTIONS = "noun.exc"  # optional
# WordNet's detachment rules for nouns (morphy(7WN)), as NLTK's WordNetCorpusReader has them
_NOUN_SUFFIXES = (
    ("s", ""),
    ("ses", "s"),
    ("ves", "f"),
    ("xes", "x"),
    ("zes", "z"),
    ("ches", "ch"),
    ("shes", "sh"),
    ("men", "man"),
    ("ies", "y"),
)
_HYPERNYM_POINTERS = ("@", "@i")  # hypernym and instance hypernym


@dataclass(frozen=True)
class Synset:
    """One noun synset: its lemmas as written in WordNet (``Ursus_arctos``), hypernyms, gloss."""

    id: str
    lemmas: tuple[str, ...]
    hypernyms: tuple[str, ...]
    gloss: str


class WordNet:
    """WordNet nouns: synsets by id, and each lemma's synsets in sense order.

    ``senses`` keys are lemmas as in ``index.noun``: lowercase with underscores
    (``brown_bear``); :meth:`senses_of` accepts any spelling of that form.
    """

    def __init__(
        self,
        synsets: dict[str, Synset],
        senses: dict[str, tuple[str, ...]],
        exceptions: dict[str, tuple[str, ...]] | None = None,
    ):
        self.synsets = synsets
        self.senses = senses
        self.exceptions = exceptions or {}

    def __len__(self) -> int:
        return len(self.synsets)

    def __contains__(self, synset_id: object) -> bool:
        return synset_id in self.synsets

    def __iter__(self) -> Iterator[str]:
        return iter(self.synsets)

    def synset(self, synset_id: str) -> Synset:
        try:
            return self.synsets[synset_id]
        except KeyError:
            raise UserInputError(
                f"'{synset_id}' is not a WordNet 3.0 noun synset id (expected 'n' + 8 digits, "
                "e.g. n01440764)"
            ) from None

    def lemmas(self, synset_id: str) -> tuple[str, ...]:
        return self.synset(synset_id).lemmas

    def gloss(self, synset_id: str) -> str:
        return self.synset(synset_id).gloss

    def hypernyms(self, synset_id: str) -> tuple[str, ...]:
        """Direct hypernyms (``@``) and instance hypernyms (``@i``), in file order."""
        return self.synset(synset_id).hypernyms

    def senses_of(self, lemma: str) -> tuple[str, ...]:
        """Synsets of a lemma in WordNet's sense order; ``()`` when it is not a noun lemma."""
        return self.senses.get(lemma.strip().lower().replace(" ", "_"), ())

    def morphy(self, form: str) -> tuple[str, ...]:
        """Noun lemmas ``form`` may be an inflection of, as WordNet's morphy finds them: an
        irregular form's bases from ``noun.exc`` (with the form itself), else the form and what
        each detachment rule makes of it (``animals`` -> ``animal``, ``boxes`` -> ``box``);
        only noun lemmas of ``index.noun`` are kept, each once, in that order."""
        form = form.strip().lower().replace(" ", "_")
        if form in self.exceptions:
            forms = [form, *self.exceptions[form]]
        else:
            forms = [form] + [
                form[: -len(suffix)] + ending
                for suffix, ending in _NOUN_SUFFIXES
                if form.endswith(suffix) and len(form) > len(suffix)
            ]
        return tuple(f for f in dict.fromkeys(forms) if f in self.senses)

    def ancestors(self, synset_id: str) -> tuple[str, ...]:
        """Every synset above ``synset_id`` (not itself), nearest first, each once.

        Breadth-first over hypernym pointers, so with several parents the order is by distance,
        then by pointer order: deterministic.
        """
        seen: dict[str, None] = {}
        frontier = list(self.hypernyms(synset_id))
        while frontier:
            nxt: list[str] = []
            for sid in frontier:
                if sid not in seen:
                    seen[sid] = None
                    nxt.extend(self.synsets[sid].hypernyms)
            frontier = nxt
        return tuple(seen)

    def hypernym_paths(self, synset_id: str) -> list[tuple[str, ...]]:
        """All root-to-synset paths (``entity`` first, ``synset_id`` last), in pointer order."""
        parents = self.hypernyms(synset_id)
        if not parents:
            return [(synset_id,)]
        return [(*path, synset_id) for parent in parents for path in self.hypernym_paths(parent)]

    def depth(self, synset_id: str) -> int:
        """Length of the shortest hypernym path to the root (the root has depth 0)."""
        return min(len(p) for p in self.hypernym_paths(synset_id)) - 1


def _parse_data(path: Path) -> dict[str, Synset]:
    """``data.noun``: offset lex_filenum ss_type w_cnt(hex) [word lex_id]... p_cnt [ptr]... | gloss."""
    synsets: dict[str, Synset] = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("  "):  # license header
                continue
            head, _, gloss = line.partition(" | ")
            fields = head.split()
            w_cnt = int(fields[3], 16)
            lemmas = tuple(fields[4 : 4 + 2 * w_cnt : 2])
            p_at = 4 + 2 * w_cnt
            p_cnt = int(fields[p_at])
            ptrs = fields[p_at + 1 : p_at + 1 + 4 * p_cnt]
            hypernyms = tuple(
                "n" + ptrs[i + 1]
                for i in range(0, len(ptrs), 4)
                if ptrs[i] in _HYPERNYM_POINTERS and ptrs[i + 2] == "n"
            )
            sid = "n" + fields[0]
            synsets[sid] = Synset(sid, lemmas, hypernyms, gloss.strip())
    return synsets


def _parse_index(path: Path) -> dict[str, tuple[str, ...]]:
    """``index.noun``: lemma pos synset_cnt p_cnt [ptr]... sense_cnt tagsense_cnt [offset]..."""
    senses: dict[str, tuple[str, ...]] = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("  "):
                continue
            fields = line.split()
            n = int(fields[2])
            senses[fields[0]] = tuple("n" + off for off in fields[len(fields) - n :])
    return senses


def _parse_exceptions(path: Path) -> dict[str, tuple[str, ...]]:
    """``noun.exc``: inflected_form base_form [base_form ...], one irregular form per line."""
    if not path.is_file():
        return {}
    out: dict[str, tuple[str, ...]] = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 2:
                out[fields[0]] = tuple(fields[1:])
    return out


def wordnet_dir(path: str | os.PathLike | None = None) -> Path:
    """The directory to read: the argument, else ``$WORDNET_DIR``, else /usr/share/wordnet."""
    return Path(path or os.environ.get(WORDNET_DIR_ENV) or DEFAULT_WORDNET_DIR)


def load_wordnet(path: str | os.PathLike | None = None) -> WordNet:
    """Parse (once per process and file version) WordNet 3.0 nouns from ``path``.

    Raises :class:`UserInputError` naming the Debian package when the files are missing.
    """
    root = wordnet_dir(path)
    stamps = []
    for name in _FILES:
        file = root / name
        try:
            st = file.stat()
        except OSError:
            raise UserInputError(
                f"WordNet file {file} not found: install the Debian package wordnet-base "
                f"(apt-get install wordnet-base), or point ${WORDNET_DIR_ENV} (or the path "
                "argument) at a directory with WordNet 3.0's data.noun and index.noun"
            ) from None
        stamps.append((st.st_size, st.st_mtime_ns))
    exc = root / _EXCEPTIONS
    stamps.append((exc.stat().st_size, exc.stat().st_mtime_ns) if exc.is_file() else None)
    return _load_cached(str(root.resolve()), tuple(stamps))


@functools.lru_cache(maxsize=4)
def _load_cached(root: str, stamps: tuple) -> WordNet:
    del stamps  # part of the cache key only: a changed file is parsed again
    root_path = Path(root)
    return WordNet(
        _parse_data(root_path / "data.noun"),
        _parse_index(root_path / "index.noun"),
        _parse_exceptions(root_path / _EXCEPTIONS),
    )
