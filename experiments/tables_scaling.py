"""Scaling-law fits over the results index: one fit per (facet, hue) group of a
:class:`~experiments.tables_config.ScalingSpec`, drawn in one figure and written as
``<name>.png`` and ``<name>.json``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from experiments.rundir import atomic_write_json
from experiments.scaling_bootstrap import fit_scaling
from experiments.scaling_render import plot_scaling
from experiments.tables_build import select
from experiments.tables_config import ScalingSpec
from experiments.tables_figures import (
    facet_groups,
    facet_title,
    panel_figure,
    save_figure,
    with_splits,
)
from experiments.tables_format import fmt_value


def fit_groups(df: pd.DataFrame, spec: ScalingSpec) -> tuple[Figure | None, list[dict]]:
    """Fit every (facet, hue) group with >= 2 data scales; the figure and the fits' summaries.
    The bootstrap resamples seeds (the index's ``seed``) with all their runs."""
    d = select(df, spec).dropna(subset=[spec.x])
    d = d[d[spec.x].astype(float) > 0]
    fits: list[dict] = []
    if d.empty:
        return None, fits
    facets, split_by = with_splits(d, spec.facets, [spec.x, *([spec.hue] if spec.hue else [])])
    panels = facet_groups(d, facets)
    fig, axes = panel_figure(len(panels), f"{spec.name}: {spec.metric} vs {spec.x}")
    for ax, (fkey, g) in zip(axes, panels):
        for hue_value, h in g.groupby(spec.hue, sort=True) if spec.hue else [("", g)]:
            n = h[spec.x].astype(float).to_numpy()
            acc = 100 * h[spec.metric].astype(float).to_numpy()  # percent, like the tables
            if len(np.unique(n)) < 2:
                continue
            seeds = h["seed"].to_numpy() if h["seed"].notna().all() else None
            fit = fit_scaling(
                n,
                acc,
                seeds=seeds,
                target_n=spec.target_images,
                top=100.0,
                bootstrap=spec.bootstrap,
            )
            label = f"{spec.hue}={fmt_value(hue_value)}" if spec.hue else ""
            plot_scaling(ax, n, acc, fit, label=label)
            fits.append(
                {
                    "facet": dict(zip(facets, map(str, fkey))),
                    "hue": str(hue_value),
                    **fit.summary(),
                }
            )
        ax.set_xlabel(f"{spec.x} (log)")
        ax.set_ylabel(f"{spec.metric} (%)")
        ax.set_title(facet_title(facets, split_by, fkey))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    fig.tight_layout()
    return fig, fits


def run_scaling(df: pd.DataFrame, spec: ScalingSpec, out: Path) -> list[dict]:
    """:func:`fit_groups`, written as <name>.json and <name>.png (nothing when no group fits)."""
    fig, fits = fit_groups(df, spec)
    if fits and fig is not None:
        save_figure(fig, out / f"{spec.name}.png")
        atomic_write_json(out / f"{spec.name}.json", fits)
    return fits
