"""The paper's axes, written once: what a pretraining run varies, and where each axis shows.

Every axis is a column of the results index (:mod:`experiments.results`) and a key of a
pretraining run's ``metrics.json`` ``axes`` (:func:`axes_from_config`, also read back by
:mod:`lightning_modules.checkpoints`). Most are a run-config key (``data.write.scale``) read
from the resolved config; the others are measured by the run (``images``: the pretraining set's
size after deduplication; ``vocab_size``). In sweep run names (:mod:`experiments.sweep_spec`) an
axis is written ``<prefix>-<value>``, the model's name bare: :data:`NAME_AXES` are always named,
and any other swept key with the prefix given here. The findings (:mod:`experiments.findings`)
pair runs that agree on every axis but one.

This module imports nothing of the project, so every layer may read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Axis:
    column: str  # results-index column and metrics.json ``axes`` key
    config_key: str = ""  # dotted run-config key; "" = measured by the run
    name_prefix: str | None = None  # run names: ``<prefix>-<value>``; "" = the bare value


AXES: tuple[Axis, ...] = (
    Axis("source", "data.source.name"),
    Axis("images"),
    Axis("scale", "data.write.scale", "data"),
    Axis("vocab", "data.vocab.name", "vocab"),
    Axis("vocab_size"),
    Axis("sampling", "data.loading.sampling", "samp"),
    Axis("sampling_combine", "data.loading.sampling_combine", "comb"),
    Axis("label_noise", "data.loading.label_noise", "noise"),
    Axis("model", "model.name", ""),
    Axis("width_per_group", "model.width_per_group", "w"),
    Axis("loss", "model.loss", "loss"),
    Axis("seed", "seed", "seed"),
)
BY_COLUMN = {axis.column: axis for axis in AXES}
COLUMNS: tuple[str, ...] = tuple(axis.column for axis in AXES)
# Measured per run, so they differ a little between the seeds of one setting.
MEASURED: tuple[str, ...] = tuple(axis.column for axis in AXES if not axis.config_key)

# Run names: these axes always, in this order (the seed reads best last).
NAME_AXES = ("model", "scale", "vocab", "sampling", "label_noise", "seed")
NAME_KEYS: tuple[str, ...] = tuple(BY_COLUMN[column].config_key for column in NAME_AXES)
# data.vocab.top_k sizes the vocabulary: it shares data.vocab.name's run-name token.
VOCAB_KEYS = (BY_COLUMN["vocab"].config_key, "data.vocab.top_k")
NAME_PREFIXES: dict[str, str] = {
    **{a.config_key: a.name_prefix for a in AXES if a.config_key and a.name_prefix is not None},
    VOCAB_KEYS[1]: BY_COLUMN["vocab"].name_prefix or "",
}


def config_value(config: dict, key: str) -> Any:
    """The value of a dotted key (``data.write.scale``) in a config dict."""
    node: Any = config
    for part in key.split("."):
        node = node[part]
    return node


def axes_from_config(config: dict, vocab_size: int, images: int) -> dict:
    """The paper's axes of a pretraining run (metrics.json ``axes``) from its config dict."""
    measured = {"images": int(images), "vocab_size": int(vocab_size)}
    return {
        a.column: config_value(config, a.config_key) if a.config_key else measured[a.column]
        for a in AXES
    }
