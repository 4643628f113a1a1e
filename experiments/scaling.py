"""Scaling-law fits of transfer accuracy against the number of pretraining images.

The names other modules use, from the modules that hold them:

* :mod:`experiments.scaling_fits`: the two forms (log-linear on the accuracy, saturating
  power law on the error) and their least-squares fits;
* :mod:`experiments.scaling_bootstrap`: :func:`fit_scaling`, both fits with confidence
  intervals from a cluster bootstrap over seeds and the prediction at the target size (why
  the interval is a t interval on the bootstrap standard error is told there);
* :mod:`experiments.scaling_render`: a fit drawn on a matplotlib Axes, and fit summaries as a
  Markdown table.
"""

from __future__ import annotations

from experiments.scaling_bootstrap import (
    LEVEL,
    TOO_FEW_RUNS,
    ScalingFit,
    fit_scaling,
    resample_counts,
    t_interval,
)
from experiments.scaling_fits import (
    B_BOUNDS,
    B_GRID,
    LogLinear,
    PowerLaw,
    fit_log_linear,
    fit_power_law,
    power_law_profile,
    weighted_log_linear,
)
from experiments.scaling_render import plot_scaling, scaling_markdown

__all__ = [
    "B_BOUNDS",
    "B_GRID",
    "LEVEL",
    "TOO_FEW_RUNS",
    "LogLinear",
    "PowerLaw",
    "ScalingFit",
    "fit_log_linear",
    "fit_power_law",
    "fit_scaling",
    "plot_scaling",
    "power_law_profile",
    "resample_counts",
    "scaling_markdown",
    "t_interval",
    "weighted_log_linear",
]
