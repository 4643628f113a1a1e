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
        *sections, field = key.split(".")
        node = defaults
        for section in sections:
            node = getattr(node, section)
        assert getattr(node, field) in values, key
        assert len(set(values)) == len(values), key
    assert isinstance(defaults, RunConfig)


@pytest.mark.parametrize("key", sorted(CHOICES))
def test_a_value_outside_a_choice_is_refused_naming_every_valid_one(key):
    with pytest.raises(UserInputError) as err:
        load_config(None, [f"{key}=not-a-choice"])
    message = str(err.value)
    assert f"'{key}'" in message and "\n" not in message
    assert message.endswith("valid choices: " + ", ".join(CHOICES[key]))


def test_every_stage_cache_key_hashes_a_whole_data_section():
    import dataclasses

    from datamodules.data_config import SECTIONS, DataConfig, SourceConfig
    from datamodules.prepare import cache, chain

    # no hand-listed field tuples: a stage's key is the hash of its section, every field of it
    assert [name for name in dir(cache) if name.endswith("_FIELDS")] == []
    for section, schema in SECTIONS.items():
        hashed = cache.section_fields(DataConfig(), section)
        assert len(hashed) == len(dataclasses.fields(schema)), section
    # the fields only source=webdataset hashes are fields of data.source
    assert set(chain.WEBDATASET_ONLY) <= {f.name for f in dataclasses.fields(SourceConfig)}
    with pytest.raises(AttributeError):
        cache.stage_key(DataConfig(), "sampling")  # misspelled section: fails, never hashes {}
    with pytest.raises(AttributeError):  # a misspelled field to leave out: fails, never hashed
        cache.stage_key(DataConfig(), "source", omit=("webdataset_tag_field",))
