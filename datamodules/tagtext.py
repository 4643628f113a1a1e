"""Tags as a person types them: normalization and hashtag extraction from free text.

``'Ursus_arctos'``, ``'#UrsusArctos'`` and ``'ursus arctos'`` all become ``'ursusarctos'``:
NFKC (full-width and compatibility forms folded), lowercase, leading ``#`` stripped, and every
whitespace, underscore, hyphen, apostrophe (ASCII and typographic), dot and comma removed
(commas also separate synonyms in vocab.tsv, and are never part of a typed hashtag).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

_SEPARATORS = " \t\n\r\f\v\u00a0\u2009\u200b_-'.,\u2018\u2019\u02bc\u2010\u2011\u2012\u2013\u2014"
_REMOVE = {ord(c): None for c in _SEPARATORS}
# `#` then word characters (Unicode letters, digits, underscore): what a hashtag link spans
_HASHTAG = re.compile(r"#(\w+)")


def normalize(tag: str) -> str:
    """The hashtag form of ``tag`` (``''`` when nothing is left). Idempotent."""
    return unicodedata.normalize("NFKC", tag).lower().strip().lstrip("#").translate(_REMOVE)


def extract_hashtags(text: str) -> list[str]:
    """Normalized hashtags of a caption, each once, in order of first appearance."""
    found = _HASHTAG.findall(unicodedata.normalize("NFKC", text))
    return unique_normalized(found)


def unique_normalized(tags: Iterable[str]) -> list[str]:
    """Normalize, drop empties, keep the first occurrence of each."""
    out: dict[str, None] = {}
    for tag in tags:
        norm = normalize(tag)
        if norm:
            out[norm] = None
    return list(out)


def image_tags(tags: Iterable[str] = (), caption: str | None = None) -> list[str]:
    """One image's normalized tags: its tag list plus the hashtags of its caption, deduplicated."""
    found = list(tags)
    if caption:
        found += _HASHTAG.findall(unicodedata.normalize("NFKC", caption))
    return unique_normalized(found)
