"""The flat ``data`` layout that the per-stage sections replaced, and where each key went.

Until issue 16 ``data`` was one flat section of ~40 keys (``data.scale``, ``data.vocab``,
``data.write_mode``, ...). :data:`LEGACY_KEYS` is the one table from each old key to its new one
(``data.scale`` -> ``data.write.scale``); everything else here is derived from it:

- user input: a YAML file, a CLI override or a sweep spec that names an old key fails with one
  line naming the new key (:func:`renamed`, called by ``experiments.config.load_config``);
- saved records: what the code reads back, a checkpoint's hyper-parameters (transfer,
  ``predict``, ``ckpt_path=``) and a prepared folder's ``manifest.json``, written with the flat
  layout reads as the sectioned one through :func:`upgrade_data` / :func:`upgrade_config`,
  silently (a record is not user input);
- the prepare cache: a stage key hashes its section's fields under their flat names
  (:data:`FLAT_NAMES`), so every folder prepared before the split keeps its name;
- sweep run names: a swept data key is named by its flat key's last component
  (:data:`FLAT_KEYS`), so run names stayed what they were.

This module imports nothing: every layer reads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# old flat key -> its key in the sectioned layout (data.cache_dir stayed where it was)
LEGACY_KEYS: dict[str, str] = {
    "data.source": "data.source.name",
    "data.manifest": "data.source.manifest",
    "data.webdataset": "data.source.webdataset",
    "data.webdataset_tags_field": "data.source.webdataset_tags_field",
    "data.webdataset_caption_field": "data.source.webdataset_caption_field",
    "data.image_size": "data.source.image_size",
    "data.num_images": "data.source.num_images",
    "data.synthetic_concepts": "data.source.synthetic_concepts",
    "data.zipf_exponent": "data.source.zipf_exponent",
    "data.holdout_fraction": "data.source.holdout_fraction",
    "data.holdout_categories": "data.source.holdout_categories",
    "data.vocab": "data.vocab.name",
    "data.top_k": "data.vocab.top_k",
    "data.min_count": "data.vocab.min_count",
    "data.ambiguity": "data.vocab.ambiguity",
    "data.stop_tags": "data.vocab.stop_tags",
    "data.max_tag_share": "data.vocab.max_tag_share",
    "data.drop_category_names": "data.vocab.drop_category_names",
    "data.dedup": "data.dedup.enabled",
    "data.dedup_hamming": "data.dedup.hamming",
    "data.dedup_targets": "data.dedup.targets",
    "data.scale": "data.write.scale",
    "data.val_fraction": "data.write.val_fraction",
    "data.max_labels": "data.write.max_labels",
    "data.jpeg_quality": "data.write.jpeg_quality",
    "data.write_mode": "data.write.mode",
    "data.shard_size": "data.write.shard_size",
    "data.resolution": "data.loading.resolution",
    "data.crop_min_scale": "data.loading.crop_min_scale",
    "data.batch_size": "data.loading.batch_size",
    "data.num_workers": "data.loading.num_workers",
    "data.sampling": "data.loading.sampling",
    "data.sampling_combine": "data.loading.sampling_combine",
    "data.label_noise": "data.loading.label_noise",
    "data.label_noise_dist": "data.loading.label_noise_dist",
    "data.verify_checksums": "data.loading.verify_checksums",
}

# section -> field -> the field's flat name (the name the stage keys hash it under)
FLAT_NAMES: dict[str, dict[str, str]] = {}
for _old, _new in LEGACY_KEYS.items():
    _, _section, _field = _new.split(".")
    FLAT_NAMES.setdefault(_section, {})[_field] = _old.split(".", 1)[1]

# new dotted key -> old dotted key (sweep run names keep the old keys' last components)
FLAT_KEYS: dict[str, str] = {new: old for old, new in LEGACY_KEYS.items()}


def renamed(key: str, value_is_mapping: bool = False) -> str | None:
    """The new key of an old flat ``key``, or None when ``key`` is not an old one.

    ``data.source``, ``data.vocab`` and ``data.dedup`` are sections now: given a mapping they
    are the new sections, given anything else the old keys.
    """
    new = LEGACY_KEYS.get(key)
    if new is None or (value_is_mapping and key.split(".", 1)[1] in FLAT_NAMES):
        return None
    return new


def upgrade_data(data: Mapping[str, Any]) -> dict[str, Any]:
    """A saved ``data`` dict in the sectioned layout: every flat key moved into its section.

    A dict already sectioned comes back equal; keys the table does not name (``cache_dir``, the
    ``seed`` a manifest adds) stay at the top. Keys a record predates stay absent.
    """
    out: dict[str, Any] = {}
    for key, value in data.items():
        mapping = isinstance(value, Mapping)
        new = renamed(f"data.{key}", mapping)
        if new is not None:
            _, section, field = new.split(".")
            out.setdefault(section, {})[field] = value
        elif mapping and key in FLAT_NAMES:
            out.setdefault(key, {}).update(value)
        else:
            out[key] = value
    return out


def upgrade_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A saved run config (a plain dict) with its ``data`` section upgraded by
    :func:`upgrade_data`; the other sections as they are."""
    out = dict(config)
    if isinstance(out.get("data"), Mapping):
        out["data"] = upgrade_data(out["data"])
    return out
