"""Shared argument handling: `<config.yaml> [key=value ...]`, and the options every verb has.

Every verb (and every ``bench`` benchmark) also takes:

- ``--print-config``: print the resolved config as YAML and exit 0 without doing any work. For
  a verb with a config file that is the composed config (defaults chain, then overrides), which
  :func:`experiments.config.load_config` reads back to the same object; ``sweep`` prints its
  spec with the command's overrides folded in, ``quickstart`` every run's config (one YAML
  document each); verbs without a config file (``bench``, ``predict``, ``vocab lookup``) print
  their resolved options.
- ``--verbose``: the libraries' full console output (see :mod:`experiments.console`).
"""

from __future__ import annotations

import argparse
from types import ModuleType
from typing import Any

import yaml

from experiments.config import load_config, to_yaml

COMMON_OPTIONS = ("print_config", "verbose")


def add_config_arguments(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument(
        "config",
        nargs=None if required else "?",
        help="YAML under configs/ (composes onto the schema)",
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        help="OmegaConf dot-list overrides, e.g. data.write.scale=0.1 seed=1",
    )


def config_from_args(args: argparse.Namespace) -> Any:
    return load_config(args.config, args.overrides)


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """``--print-config`` and ``--verbose`` on a verb's parser and on each of its sub-commands."""
    for sub in [parser, *_subparsers(parser)]:
        known = sub._option_string_actions
        # on sub-commands SUPPRESS: an unset flag there must not hide one given before it
        default = argparse.SUPPRESS if sub is not parser else False
        if "--print-config" not in known:
            sub.add_argument(
                "--print-config",
                action="store_true",
                default=default,
                help="print the resolved config as YAML and exit",
            )
        if "--verbose" not in known:
            sub.add_argument(
                "--verbose",
                action="store_true",
                default=default,
                help="show every library message (Lightning tips, W&B, warnings)",
            )


def _subparsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                out += [sub, *_subparsers(sub)]
    return out


# ---------------------------------------------------------------------------------------------
# --print-config


def options_config(args: argparse.Namespace) -> list[tuple[str, Any]]:
    """A verb without a config file: its parsed options are its config."""
    plain = (str, int, float, bool, type(None))

    def clean(v: Any) -> Any:
        if isinstance(v, list | tuple):
            return [clean(x) for x in v]
        return v if isinstance(v, plain) else str(v)

    opts = {k: clean(v) for k, v in vars(args).items() if k not in COMMON_OPTIONS}
    return [("", yaml.safe_dump(opts, sort_keys=False))]


def run_config(args: argparse.Namespace) -> list[tuple[str, Any]]:
    return [("", config_from_args(args))]


def resolved_config(module: ModuleType, args: argparse.Namespace) -> str:
    """What ``--print-config`` prints: one YAML document per config (a ``# title`` above each
    when there are several). A verb module that resolves its configs its own way defines
    ``resolved_configs(args) -> [(title, config)]``; otherwise a verb with a config file prints
    it composed with its overrides, and one without prints its parsed options."""
    default = (
        run_config if hasattr(args, "config") and hasattr(args, "overrides") else options_config
    )
    docs = getattr(module, "resolved_configs", default)(args)
    texts = [(title, c if isinstance(c, str) else to_yaml(c)) for title, c in docs]
    if len(texts) == 1:
        return texts[0][1]
    return "".join(f"--- # {title}\n{text}" for title, text in texts)
