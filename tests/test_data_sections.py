"""The data config's section per stage (issue 16): each prepare stage's key follows its own
section only (and stayed what the flat layout gave), an old flat key names its new one in one
line, and the records the flat layout wrote (checkpoints, manifests) still read."""

from __future__ import annotations

import copy
import dataclasses
import json

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from tqdm import tqdm

from datamodules.axes import axes_from_config
from datamodules.data_config import CHOICES, SECTIONS
from datamodules.data_legacy import FLAT_NAMES, LEGACY_KEYS, upgrade_config, upgrade_data
from datamodules.errors import UserInputError
from datamodules.prepare import chain, dedup_stage
from experiments import resume
from experiments.config import load_config, to_dict
from experiments.sweep_spec import load_spec

TINY = "configs/pretrain/tiny_cpu.yaml"
SECTION_KEYS = sorted(
    f"data.{s}.{f.name}" for s, c in SECTIONS.items() for f in dataclasses.fields(c)
)
V = 6


# --- the stage keys ---------------------------------------------------------------------------


def _keys(data_cfg, seed: int = 0) -> dict[str, str]:
    """Each stage's folder name (its key) for this config."""
    return {stage: path.name for stage, path in chain._plan(data_cfg, seed).items()}


def _other(section: str, field: str, value):
    """A valid value of the field that differs from ``value``."""
    choices = CHOICES.get(section, {}).get(field)
    if choices:
        return choices[(choices.index(value) + 1) % len(choices)]
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value / 2
    if isinstance(value, list):
        return [] if value else ["x"]
    return value + "x"


# the stages whose keys hash each section (directly or through an upstream key)
CHANGES = {
    "source": {"scan", "vocab", "dedup", "final"},
    "vocab": {"vocab", "final"},
    "dedup": {"dedup", "final"},
    "write": {"final"},
    "loading": set(),
}


@pytest.mark.parametrize("key", SECTION_KEYS)
def test_a_stage_key_changes_with_a_field_of_its_own_section_only(key):
    _, section, field = key.split(".")
    base = load_config(None, ["data.source.name=synthetic"]).data
    changed = copy.deepcopy(base)
    values = getattr(changed, section)
    setattr(values, field, _other(section, field, getattr(values, field)))
    # only source=webdataset reads (and hashes) the webdataset fields
    expected = set() if field in chain.WEBDATASET_ONLY else CHANGES[section]
    before, after = _keys(base), _keys(changed)
    assert {stage for stage in before if before[stage] != after[stage]} == expected


@pytest.mark.parametrize("field", chain.WEBDATASET_ONLY)
def test_the_webdataset_fields_key_the_webdataset_scan(field, monkeypatch):
    monkeypatch.setattr(chain, "_source_fingerprint", lambda source: {})  # no tars to stat
    base = load_config(None, ["data.source.name=webdataset"]).data
    changed = copy.deepcopy(base)
    setattr(changed.source, field, getattr(base.source, field) + "x")
    before, after = _keys(base), _keys(changed)
    assert {stage for stage in before if before[stage] != after[stage]} == CHANGES["source"]


def test_a_changed_cache_dir_or_seed_moves_only_what_they_decide(tmp_path):
    base = load_config(None, ["data.source.name=synthetic"]).data
    moved = dataclasses.replace(base, cache_dir=str(tmp_path))
    assert _keys(moved) == _keys(base)  # the same folder names, under another root
    assert chain._plan(moved, 0)["final"].parent == tmp_path / "prepared"
    seeded = _keys(base, seed=1)
    assert {s for s in seeded if seeded[s] != _keys(base)[s]} == {"dedup", "final"}


class _Target:
    def __init__(self):
        rng = np.random.default_rng(0)
        self.train = [(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8), i % 2) for i in range(2)]
        self.val = self.train
        self.classes = ["a", "b"]


def test_stage_keys_are_the_ones_the_flat_layout_gave(tmp_path, monkeypatch):
    """Each section is hashed under its fields' flat names, so every stage folder (and eval
    signature entry) prepared before the sections keeps its name. Values computed with the
    flat layout (commit be990e2) for the same settings."""
    monkeypatch.setattr("datamodules.dedup_targets.sources.load_target", lambda *a, **k: _Target())
    base = [
        "data.source.name=synthetic",
        "data.source.num_images=500",
        "data.source.synthetic_concepts=50",
        "data.source.holdout_categories=[a,b]",
        f"data.cache_dir={tmp_path}",
    ]
    more = [
        "data.vocab.name=in1k",
        "data.vocab.top_k=100",
        "data.vocab.stop_tags=[foo]",
        "data.dedup.enabled=false",
        "data.dedup.hamming=6",
        "data.dedup.targets=[synthetic_in]",
        "data.write.scale=0.5",
        "data.write.mode=raw",
        "data.write.shard_size=1000",
        "data.write.max_labels=4",
        "data.loading.batch_size=32",
        "seed=3",
    ]
    flat_layout = [
        (
            "dd8d2bad9553da6c",
            "a1a0e51f03844a77",
            "16ae299326b05973",
            "55ee6971b3c8e401",
            "b04cd178c7c838e5",
        ),
        (
            "dd8d2bad9553da6c",
            "993f9e75926dcf05",
            "c18647a94722af7f",
            "5d8bd735c3c66f9c",
            "03b3f39ad63a5ede",
        ),
    ]
    for overrides, (scan, vocab, dedup, final, signatures) in zip([base, base + more], flat_layout):
        cfg = load_config(None, overrides)
        assert _keys(cfg.data, cfg.seed) == {
            "scan": f"scan-{scan}",
            "vocab": f"vocab-{vocab}",
            "dedup": f"dedup-{dedup}",
            "final": f"synthetic-{final}",
        }
        dedup_stage.target_signatures(cfg.data, cfg.seed, "synthetic_in", tqdm(disable=True))
        entries = tmp_path / dedup_stage.EVAL_SIGNATURES_DIR
        assert (entries / f"synthetic_in-{signatures}").is_dir()


# --- old keys and misspelled keys: one line each ------------------------------------------------


def test_the_legacy_table_maps_every_flat_key_to_one_section_key():
    assert sorted(LEGACY_KEYS.values()) == SECTION_KEYS  # each once; data.cache_dir stayed
    assert all(old.count(".") == 1 and old not in SECTION_KEYS for old in LEGACY_KEYS)


@pytest.mark.parametrize("old", sorted(LEGACY_KEYS))
def test_an_old_key_as_an_override_names_its_new_key(old):
    with pytest.raises(UserInputError) as err:
        load_config(TINY, [f"{old}=1"])
    assert str(err.value) == f"override: '{old}' was renamed; use '{LEGACY_KEYS[old]}'"


def test_an_old_key_that_is_now_a_section_names_its_field():
    for item, new in [
        ("data.source=synthetic", "data.source.name"),
        ("data.vocab=in1k", "data.vocab.name"),
        ("data.dedup=false", "data.dedup.enabled"),
    ]:
        with pytest.raises(UserInputError) as err:
            load_config(None, [item])
        assert str(err.value) == f"override: '{item.split('=')[0]}' was renamed; use '{new}'"
    assert load_config(None, ["data.source={name: synthetic}"]).data.source.name == "synthetic"


def test_an_old_key_in_a_yaml_names_its_new_key(tmp_path):
    old = tmp_path / "old.yaml"
    old.write_text("data:\n  source: synthetic\n  scale: 0.1\n")
    with pytest.raises(UserInputError) as err:
        load_config(old)
    assert str(err.value) == f"{old}: 'data.source' was renamed; use 'data.source.name'"
    base = tmp_path / "base.yaml"
    base.write_text("data:\n  write_mode: raw\n")
    child = tmp_path / "child.yaml"
    child.write_text("defaults: [base.yaml]\ndata:\n  write:\n    scale: 0.1\n")
    with pytest.raises(UserInputError) as err:
        load_config(child)
    assert str(err.value) == f"{base}: 'data.write_mode' was renamed; use 'data.write.mode'"
    new = tmp_path / "new.yaml"
    new.write_text("data:\n  source:\n    name: synthetic\n  write:\n    scale: 0.1\n")
    cfg = load_config(new)
    assert (cfg.data.source.name, cfg.data.write.scale) == ("synthetic", 0.1)


def test_a_misspelled_field_of_a_section_fails_naming_the_section_keys(tmp_path):
    valid = ", ".join(sorted(f.name for f in dataclasses.fields(SECTIONS["source"])))
    with pytest.raises(UserInputError) as err:
        load_config(None, ["data.source.nme=synthetic"])
    assert str(err.value) == (
        f"override: unknown config key 'data.source.nme'; valid keys in data.source: {valid}"
    )
    typo = tmp_path / "typo.yaml"
    typo.write_text("data:\n  loading:\n    sampling_mode: sqrt\n")
    with pytest.raises(UserInputError) as err:
        load_config(typo)
    message = str(err.value)
    assert "unknown config key 'data.loading.sampling_mode'; valid keys in data.loading:" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("section", "old"),
    [
        ("grid:\n  data.scale: [0.5, 1.0]\n", "data.scale"),
        ("zip:\n  data.vocab: [in1k]\n  data.vocab.top_k: [0]\n", "data.vocab"),
        ("name_keys: [model.name, data.num_images, seed]\n", "data.num_images"),
        ("overrides: [data.source=synthetic]\n", "data.source"),
        ("value_names:\n  data.sampling: {sqrt: sq}\n", "data.sampling"),
    ],
)
def test_an_old_key_in_a_sweep_spec_names_its_new_key(tmp_path, section, old):
    spec = tmp_path / "old_sweep.yaml"
    spec.write_text(f"base: {TINY}\n{section}")
    with pytest.raises(UserInputError) as err:
        load_spec(spec)
    assert str(err.value) == f"{spec}: '{old}' was renamed; use '{LEGACY_KEYS[old]}'"


# --- records of the flat layout ---------------------------------------------------------------


def _flat(config: dict) -> dict:
    """A run config dict as the flat layout wrote it (config.yaml, a checkpoint's hparams)."""
    data = config["data"]
    flat = {"cache_dir": data["cache_dir"]}
    for section, names in FLAT_NAMES.items():
        flat.update({names[field]: value for field, value in data[section].items()})
    return {**config, "data": flat}


def test_a_flat_record_upgrades_to_the_sections():
    config = to_dict(load_config(TINY, ["data.write.scale=0.5", "data.dedup.enabled=false"]))
    assert "scale" in _flat(config)["data"] and "write" not in _flat(config)["data"]
    assert upgrade_config(_flat(config)) == config
    assert upgrade_config(config) == config  # a sectioned record comes back equal
    manifest_config = {**_flat(config)["data"], "seed": 3}  # what manifest.json holds
    assert upgrade_data(manifest_config) == {**config["data"], "seed": 3}
    # a record older than some keys: those stay absent (readers default them, as before)
    assert upgrade_data({"source": "openclipart", "scale": 0.5}) == {
        "source": {"name": "openclipart"},
        "write": {"scale": 0.5},
    }


def _old_checkpoint(path, config: dict, step: int = 5):
    """A pretraining checkpoint as the flat layout saved it (the hparams HashtagPretrainer
    saves, the network's weights, the global step)."""
    from lightning_modules.backbones import build_resnext

    net = build_resnext(OmegaConf.create(config["model"]), V)
    hparams = {"config": _flat(config), "vocab_size": V, "hashtags": list("abcdef")}
    state = {f"net.{k}": v for k, v in net.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "hyper_parameters": {**hparams, "num_train": 100},
            "state_dict": state,
            "global_step": step,
        },
        path,
    )
    return path


def test_a_flat_checkpoint_loads_for_transfer_and_prediction(tmp_path):
    from lightning_modules.checkpoints import load_pretrained
    from lightning_modules.pretrain import HashtagPretrainer

    cfg = load_config(
        TINY,
        [
            "data.source.name=openclipart",
            "data.source.holdout_categories=[animals]",
            "data.loading.resolution=48",
            "data.write.scale=0.5",
        ],
    )
    config = to_dict(cfg)
    ckpt = _old_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt", config)
    _, info = load_pretrained(ckpt)
    assert info["resolution"] == 48
    assert info["heldout"] == {
        "source": "openclipart",
        "holdout_fraction": 0.2,
        "holdout_categories": ["animals"],
    }
    assert info["pretrain_axes"] == axes_from_config(config, V, 100)
    assert (
        info["pretrain_axes"]["scale"] == 0.5 and info["pretrain_axes"]["source"] == "openclipart"
    )
    module = HashtagPretrainer(_flat(config), V)  # what load_from_checkpoint rebuilds
    assert module.cfg.data.loading.batch_size == cfg.data.loading.batch_size


def test_a_flat_checkpoint_is_compared_key_by_key_when_continued(tmp_path):
    cfg = load_config(TINY)
    parent = resume.read_parent(str(_old_checkpoint(tmp_path / "old.ckpt", to_dict(cfg))))
    assert parent.config == to_dict(cfg)
    resume.check_compatible(parent, to_dict(cfg))  # the same recipe continues
    may = to_dict(load_config(TINY, ["data.loading.num_workers=0"]))
    resume.check_compatible(parent, may)  # the loader's processes may change
    changed = to_dict(load_config(TINY, ["data.write.scale=0.5"]))
    with pytest.raises(UserInputError, match=r"data\.write\.scale \(1\.0 -> 0\.5\)"):
        resume.check_compatible(parent, changed)


def test_a_flat_manifest_still_summarizes(tmp_path):
    from datamodules.prepare import format_summary

    config = to_dict(load_config(TINY, ["data.write.scale=0.25"]))
    stage = {"reused": False, "seconds": 1.0, "key": "k"}
    counts = dict.fromkeys(["images_in", "corrupt", "unlabeled", "deduplicated", "kept"], 0)
    stats = {**counts, "deduplicated_labelled": 0, "train": 1, "val": 0, "corrupt_ids": []}
    stats["stages"] = dict.fromkeys(["scan", "vocab", "dedup", "write"], stage)
    manifest = {
        "config": {**_flat(config)["data"], "seed": 0},
        "stats": stats,
        "train": [{"file": "train-000.beton"}],
        "vocab_size": V,
    }
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    assert "(data.write.scale=0.25)" in format_summary(tmp_path)
