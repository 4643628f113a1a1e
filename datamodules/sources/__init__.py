"""Record sources: tagged images for pretraining, and labelled targets for transfer.

``open_source(data_cfg, shard, num_shards)`` returns the pretraining pool that ``data.source``
names (``openclipart``: the non-held-out images; ``synthetic``: a lazy corpus of ``num_images``;
``manifest``: the user's file; ``webdataset``: img2dataset-style tar shards) as an indexable,
sized sequence of :class:`TaggedImage`.
``load_target(name, ...)`` returns a :class:`TargetDataset`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from datamodules.data_config import SOURCES
from datamodules.errors import UserInputError
from datamodules.sources.base import CorruptImage, TaggedImage, load_rgb
from datamodules.sources.targets import TARGETS, TargetDataset, load_target

if TYPE_CHECKING:
    from datamodules.data_config import DataConfig

# The synthetic corpus is a dataset, not a run: runs with different `seed` values (init,
# sampling) see the same images. Target tasks use other random streams (no overlap).
SYNTHETIC_CORPUS_SEED = 0


def open_source(data_cfg: DataConfig, shard: int = 0, num_shards: int = 1) -> Sequence[TaggedImage]:
    """The pretraining records of ``data_cfg.source`` for shard ``shard`` of ``num_shards``
    (``data_cfg.cache_dir`` keeps OpenClipart's rasterized images).

    Shards are disjoint and together cover the corpus: by a stable hash of the source id
    (OpenClipart, manifest), by index modulo ``num_shards`` (synthetic, never enumerated) or by
    tar file (webdataset: shard s reads tars s, s + num_shards, ...).
    """
    if num_shards < 1 or not 0 <= shard < num_shards:
        raise UserInputError(f"shard {shard} of {num_shards}: need 0 <= shard < num_shards")
    source = data_cfg.source
    if source.name == "openclipart":
        from datamodules.sources.openclipart import load_records

        return load_records(
            data_cfg.cache_dir,
            int(source.image_size),
            heldout=False,
            holdout_fraction=float(source.holdout_fraction),
            holdout_categories=tuple(source.holdout_categories),
            shard=shard,
            num_shards=num_shards,
        )
    if source.name == "synthetic":
        from datamodules.sources.synthetic import SyntheticCorpus, get_world

        world = get_world(
            int(source.synthetic_concepts), float(source.zipf_exponent), int(source.image_size)
        )
        return SyntheticCorpus(
            world, SYNTHETIC_CORPUS_SEED, int(source.num_images), shard, num_shards
        )
    if source.name == "manifest":
        from datamodules.sources.manifest import open_manifest

        return open_manifest(source.manifest, shard, num_shards)
    if source.name == "webdataset":
        from datamodules.sources.webdataset import open_webdataset

        return open_webdataset(source, shard, num_shards)
    raise UserInputError(
        f"unknown data.source.name '{source.name}'; choose one of {', '.join(SOURCES)}"
    )


__all__ = [
    "CorruptImage",
    "TaggedImage",
    "TargetDataset",
    "TARGETS",
    "SOURCES",
    "load_rgb",
    "load_target",
    "open_source",
]
