"""WebDataset tar shards as a pretraining source (img2dataset's output: LAION, DataComp, ...).

``data.source.webdataset`` names the tars: one ``.tar``, a brace-expanded list
(``/data/{00000..00031}.tar``; ``::`` joins several patterns: the webdataset package's own
``expand_urls``) or a folder (its ``*.tar`` files, sorted). A sample is the tar members that
share a key (webdataset's convention: the member name up to the first dot of its base name,
``00000042.jpg`` + ``00000042.json`` + ``00000042.txt``). Its tags are the JSON field
``data.source.webdataset_tags_field`` (a list, or a ``|``/``,``-separated string) plus the hashtags
extracted from its caption (the JSON field ``data.source.webdataset_caption_field`` and the ``.txt``
member), exactly as a manifest's ``tags`` and ``caption`` columns.

Scan shards map to tars: shard ``s`` of ``n`` reads tars ``s, s + n, ...``, so the parallel scan
spreads whole tars over its processes. Images stay in the tars: a record holds the offset of its
image member and reads the bytes on access; a member that does not decode (or a sample without
an image) raises :class:`CorruptImage` in ``load_rgb`` and is skipped and counted like any other
bad input.
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Sequence
from pathlib import Path

from datamodules.errors import UserInputError
from datamodules.sources.base import TaggedImage
from datamodules.sources.manifest import _tag_list
from datamodules.tagtext import image_tags

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
ID_PREFIX = "webdataset:"


def tar_paths(spec: str) -> list[str]:
    """The tar files ``data.source.webdataset`` names (see the module docstring), each checked."""
    from webdataset.shardlists import expand_urls

    if not str(spec).strip():
        raise UserInputError(
            "data.source.name=webdataset needs data.source.webdataset=<a .tar, a folder of .tar files, or a "
            "brace pattern like /data/{00000..00031}.tar>"
        )
    folder = Path(spec).expanduser()
    if folder.is_dir():
        paths = sorted(str(p) for p in folder.glob("*.tar"))
        if not paths:
            raise UserInputError(f"data.source.webdataset={spec}: the folder holds no .tar file")
        return paths
    paths = [str(Path(p).expanduser()) for p in expand_urls(str(spec))]
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        raise UserInputError(
            f"data.source.webdataset={spec}: {len(missing)} of {len(paths)} tar files not found "
            f"(first: {missing[0]})"
        )
    return paths


def _split(name: str) -> tuple[str, str]:
    """(key, extension) of a member name, as webdataset splits it."""
    from webdataset.tariterators import base_plus_ext

    key, ext = base_plus_ext(name)
    return (key or name), (ext or "").lower()


class WebDatasetRecords(Sequence):
    """The samples of some tars as :class:`TaggedImage` records (image bytes read on access)."""

    def __init__(self, tars: Sequence[str], tags_field: str, caption_field: str):
        self.tars = list(tars)
        self.items: list[tuple[str, tuple[str, ...], int, int, int]] = []  # id, tags, tar, at, n
        for t, path in enumerate(self.tars):
            self._index(t, path, tags_field, caption_field)

    def _index(self, t: int, path: str, tags_field: str, caption_field: str) -> None:
        samples: dict[str, dict] = {}
        try:
            with tarfile.open(path, "r:") as tar:
                for member in tar:
                    if not member.isfile():
                        continue
                    key, ext = _split(member.name)
                    sample = samples.setdefault(key, {})
                    if ext in IMAGE_EXTENSIONS and "image" not in sample:
                        sample["image"] = (member.offset_data, member.size)
                    elif ext in ("json", "txt"):
                        sample[ext] = tar.extractfile(member).read()
        except (tarfile.TarError, OSError) as exc:
            raise UserInputError(
                f"data.source.webdataset: {path} is not a readable tar: {exc}"
            ) from None
        stem = Path(path).name.removesuffix(".tar")
        for key, sample in samples.items():
            tags, caption = [], []
            where = f"{path}: {key}.json"
            meta = _json(sample.get("json"))
            if tags_field and tags_field in meta:
                try:
                    tags = _tag_list(meta[tags_field], where)
                except UserInputError:
                    tags = []  # a malformed tags value: the sample is unlabeled
            if caption_field and isinstance(meta.get(caption_field), str):
                caption.append(meta[caption_field])
            if "txt" in sample:
                caption.append(sample["txt"].decode("utf-8", errors="replace"))
            labels = tuple(image_tags(tags, "\n".join(caption)))
            at, size = sample.get("image", (-1, 0))
            self.items.append((f"{ID_PREFIX}{stem}/{key}", labels, t, at, size))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> TaggedImage:
        source_id, tags, t, at, size = self.items[index]
        data = None
        if at >= 0:  # else no image member: load_rgb reports the record as corrupt
            with open(self.tars[t], "rb") as fh:
                fh.seek(at)
                data = fh.read(size)
        return TaggedImage(source_id, tags, data=data)


def _json(raw: bytes | None) -> dict:
    if raw is None:
        return {}
    try:
        value = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}  # a broken .json member: no tags from it
    return value if isinstance(value, dict) else {}


def open_webdataset(source, shard: int = 0, num_shards: int = 1) -> WebDatasetRecords:
    """Shard ``shard`` of ``num_shards`` of the tars that ``source`` (the ``data.source``
    section) names: the samples of tars ``shard, shard + num_shards, ...``."""
    tars = tar_paths(source.webdataset)[shard::num_shards]
    return WebDatasetRecords(
        tars, str(source.webdataset_tags_field), str(source.webdataset_caption_field)
    )
