"""The layering the code promises: data flows up (datamodules -> lightning_modules ->
experiments) and no module below ``experiments/`` imports from it, not even for type hints;
every closed config choice is defined once, in its section's module, and checked on load."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from datamodules.errors import UserInputError
from experiments.config import CHOICES, RunConfig, load_config

ROOT = Path(__file__).resolve().parent.parent
BELOW = {"datamodules": ("experiments",), "lightning_modules": ("experiments",)}


def _imported_packages(path: Path) -> set[str]:
    """Top-level package of every import in the file, wherever it sits (TYPE_CHECKING blocks
    and function bodies included)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
    return out


@pytest.mark.parametrize("package", sorted(BELOW))
def test_no_module_below_experiments_imports_upward(package):
    offenders = {
        str(path.relative_to(ROOT)): sorted(_imported_packages(path) & set(BELOW[package]))
        for path in sorted((ROOT / package).rglob("*.py"))
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_datamodules_never_import_lightning_modules():
    offenders = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "datamodules").rglob("*.py"))
        if "lightning_modules" in _imported_packages(path)
    ]
    assert offenders == []


def test_every_choice_is_a_schema_field_whose_default_is_valid():
    defaults = load_config(None)
    assert len(CHOICES) == 12
    for key, values in CHOICES.items():
        section, field = key.split(".")
        assert getattr(getattr(defaults, section), field) in values, key
        assert len(set(values)) == len(values), key
    assert isinstance(defaults, RunConfig)


@pytest.mark.parametrize("key", sorted(CHOICES))
def test_a_value_outside_a_choice_is_refused_naming_every_valid_one(key):
    with pytest.raises(UserInputError) as err:
        load_config(None, [f"{key}=not-a-choice"])
    message = str(err.value)
    assert f"'{key}'" in message and "\n" not in message
    assert message.endswith("valid choices: " + ", ".join(CHOICES[key]))


def test_every_stage_cache_key_field_is_a_data_field():
    import dataclasses

    from datamodules.data_config import DataConfig
    from datamodules.prepare import cache

    fields = {f.name for f in dataclasses.fields(DataConfig)}
    stages = [name for name in dir(cache) if name.endswith("_FIELDS")]
    assert sorted(stages) == [
        "DEDUP_FIELDS",
        "SCAN_FIELDS",
        "VOCAB_FIELDS",
        "WEBDATASET_FIELDS",
        "WRITE_FIELDS",
    ]
    for name in stages:
        assert set(getattr(cache, name)) <= fields, name
    with pytest.raises(AttributeError):
        cache.stage_key(DataConfig(), ("sampling_mode",))  # misspelled: fails, never None
