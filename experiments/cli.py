"""Shared argument handling for verbs that take `<config.yaml> [key=value ...]`."""

from __future__ import annotations

import argparse
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
