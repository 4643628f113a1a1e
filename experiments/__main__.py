"""`python -m experiments <verb> ...`: the one command line of the project.

Each verb lives in its own module with ``add_arguments(parser)`` and ``run(args) -> int``; it is
imported only when used, so ``--help`` stays fast. Bad user input (:class:`UserInputError`) is
printed on one line and exits with status 2, without a traceback.

Every verb also takes ``--print-config`` (print the resolved config as YAML, exit 0, do nothing
else) and ``--verbose`` (all library output; also accepted before the verb), see
:mod:`experiments.cli`. The console is configured (:mod:`experiments.console`) before a verb's
module, and with it Lightning or W&B, is imported.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from datamodules.errors import UserInputError
from experiments import console
from experiments.cli import add_common_options, resolved_config

VERBS: dict[str, tuple[str, str]] = {
    # verb: (module, one-line help)
    "prepare": (
        "experiments.prepare",
        "raw tagged images -> vocabulary, labels, dedup, FFCV shards",
    ),
    "vocab": ("experiments.vocab", "build a hashtag vocabulary, or look tags up in it"),
    "pretrain": (
        "experiments.pretrain",
        "hashtag pretraining (multi-label softmax) into runs/<name>",
    ),
    "transfer": ("experiments.transfer", "linear probe or fine-tuning of a pretrained network"),
    "sweep": ("experiments.sweep", "expand and launch a sweep over the paper's axes"),
    "tables": ("experiments.tables", "results index, paper tables, figures, scaling-law fits"),
    "reproduce": (
        "experiments.reproduce",
        "run every sweep of a suite (mini), then build its results folder",
    ),
    "quickstart": ("experiments.quickstart", "the main job: tags -> pretrain -> transfer -> table"),
    "bench": ("experiments.bench", "benchmarks that print figures and save JSON"),
    "predict": ("experiments.predict", "top-k hashtags for images from a checkpoint"),
}


def _top_help() -> str:
    width = max(map(len, VERBS))
    lines = ["usage: python -m experiments [--verbose] <verb> [options]", "", "verbs:"]
    lines += [f"  {verb:<{width}}  {help_}" for verb, (_, help_) in VERBS.items()]
    lines += [
        "",
        "every verb: --print-config (print the resolved config as YAML and exit),",
        "            --verbose (show Lightning tips, W&B messages and library warnings)",
        "Run `python -m experiments <verb> --help` for a verb's options.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = False
    while argv and argv[0] in ("--verbose", "-v"):  # global flag before the verb
        verbose, argv = True, argv[1:]
    console.configure(verbose or "--verbose" in argv)  # before any library is imported
    if not argv or argv[0] in ("-h", "--help"):
        print(_top_help())
        return 0 if argv else 2
    verb, rest = argv[0], argv[1:]
    if verb not in VERBS:
        print(f"error: unknown verb '{verb}'; valid verbs: {', '.join(VERBS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(VERBS[verb][0])
    parser = argparse.ArgumentParser(
        prog=f"python -m experiments {verb}", description=VERBS[verb][1]
    )
    module.add_arguments(parser)
    add_common_options(parser)
    try:  # options may sit between positionals: `sweep spec.yaml --dry-run seed=1`
        args = parser.parse_intermixed_args(rest)
    except TypeError:  # argparse cannot intermix with sub-commands (bench)
        args = parser.parse_args(rest)
    try:
        if args.print_config:
            print(resolved_config(module, args), end="")
            return 0
        return int(module.run(args) or 0)
    except UserInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
