"""The paper's claims, each tested on this project's runs with paired per-seed differences.

A claim (:mod:`experiments.findings_claims`) names an axis and two arms; runs identical but for
that axis, with the same seeds and transfer settings, make a pair, and a seed's pairs give one
number (:mod:`experiments.findings_pairs`). Over the seeds: the mean, a 95% t interval and a
verdict on the direction, *agrees*, *contradicts* or *inconclusive*, with the size judged
against the paper's figure in a column of its own (:mod:`experiments.findings_stats`). The
findings table has a row per claim and evaluation setting
(:mod:`experiments.findings_table`); ``findings.md`` is that table as Markdown
(:mod:`experiments.findings_render`). Each module's docstring states its part of the method.

This module holds the names other modules use.
"""

from __future__ import annotations

from experiments.findings_claims import CLAIMS, SEEDS, SETUP, Claim
from experiments.findings_pairs import baseline_differences, per_seed_differences
from experiments.findings_render import findings_markdown
from experiments.findings_stats import (
    AGREES,
    CONTRADICTS,
    INCONCLUSIVE,
    LEVEL,
    MISSING,
    Finding,
    measure,
    t_interval,
)
from experiments.findings_table import COLUMNS, findings_table

__all__ = [
    "AGREES",
    "CLAIMS",
    "COLUMNS",
    "CONTRADICTS",
    "INCONCLUSIVE",
    "LEVEL",
    "MISSING",
    "SEEDS",
    "SETUP",
    "Claim",
    "Finding",
    "baseline_differences",
    "findings_markdown",
    "findings_table",
    "measure",
    "per_seed_differences",
    "t_interval",
]
