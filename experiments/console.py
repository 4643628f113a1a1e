"""What the console shows: by default one progress bar per stage and one result line per run.

:func:`configure` is the one place that quiets the libraries, applied by
``experiments/__main__.py`` before any verb (or library) is imported. By default:

- Python warnings are ignored (deprecations, Lightning's ``PossibleUserWarning`` advice, "log
  directory exists" notices, ...), except the ``UserWarning``s raised in this project's own
  packages (``experiments``, ``datamodules``, ``lightning_modules``: e.g. inconsistent data);
- Lightning's info lines (``GPU available``, ``TPU available``, ``💡 Tip: ...``, "max_steps
  reached", ...) are dropped: its ``rank_zero`` loggers are set to WARNING;
- W&B is silent (``WANDB_SILENT=true``: no banner, no sync hints); its real errors still raise;
- :func:`progress_bar` gives training one bar over all optimizer steps, with no version number
  and no validation bars (``experiments.progress``).

``--verbose`` (``python -m experiments --verbose <verb> ...``) leaves everything as the libraries
make it. It is passed on to child processes (sweeps run each run as a subprocess) through the
environment variable ``EXPERIMENTS_VERBOSE=1``, which also turns it on by itself.
"""

from __future__ import annotations

import logging
import os
import warnings
from typing import Any

VERBOSE_ENV = "EXPERIMENTS_VERBOSE"
OWN_PACKAGES = r"(experiments|datamodules|lightning_modules|tests)(\.|$)"
QUIET_LOGGERS = (  # where Lightning's rank_zero_info / rank_zero_debug lines go
    "lightning.pytorch.utilities.rank_zero",
    "lightning.fabric.utilities.rank_zero",
    "lightning_utilities.core.rank_zero",
)


def is_verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0")


def configure(verbose: bool = False) -> bool:
    """Apply the default quiet console, or leave the libraries' own output (``verbose``).

    Returns whether the console is verbose. Safe to call more than once in a process.
    """
    if verbose:
        os.environ[VERBOSE_ENV] = "1"
    verbose = is_verbose()
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if verbose else logging.WARNING)
    if verbose:
        return True
    os.environ.setdefault("WANDB_SILENT", "true")  # a user's own WANDB_SILENT wins
    warnings.filterwarnings("ignore")
    # inserted in front, so it wins: this project's own warnings (data problems) still show
    warnings.filterwarnings("default", category=UserWarning, module=OWN_PACKAGES)
    return False


def progress_bar() -> Any | None:
    """One progress bar per stage for a Trainer's ``callbacks`` (``None`` with ``--verbose``:
    Lightning's stock bars)."""
    if is_verbose():
        return None
    from experiments.progress import StageProgressBar

    return StageProgressBar()
