"""Shared argument handling for verbs that take `<config.yaml> [key=value ...]`."""

from __future__ import annotations

import argparse
import importlib
from types import ModuleType
from typing import Any

from experiments.config import load_config


def add_config_arguments(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument(
        "config",
        nargs=None if required else "?",
        help="YAML under configs/ (composes onto the schema)",
    )
    parser.add_argument(
        "overrides", nargs="*", help="OmegaConf dot-list overrides, e.g. data.scale=0.1 seed=1"
    )


def config_from_args(args: argparse.Namespace) -> Any:
    return load_config(args.config, args.overrides)


def import_optional(module_name: str) -> ModuleType | None:
    """The module, or None when that very module does not exist (a verb not built yet).

    An import error inside the module (a missing dependency of it) still raises.
    """
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            return None
        raise
