"""A ``DataConfig`` for tests, section by section (the data config has a section per stage)."""

from __future__ import annotations

import dataclasses
from typing import Any

from datamodules.data_config import DataConfig


def data_config(*layers: dict[str, Any]) -> DataConfig:
    """The default ``DataConfig`` with ``layers`` applied in order; a layer maps a section to
    the fields it sets (``{"write": {"scale": 0.5}}``), or ``cache_dir`` to its value."""
    cfg = DataConfig()
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, dict):
                value = dataclasses.replace(getattr(cfg, key), **value)
            setattr(cfg, key, value)
    return cfg
