"""Figures of the results index: mean ± std over seeds of a metric against a swept key, a line
per hue value, a panel per facet. Drawn on ``matplotlib.figure.Figure`` (no pyplot, no global
backend: nothing happens at import time) and returned, so their plotted data can be read
back; :func:`save_figure` writes the PNG."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from experiments import results
from experiments.tables_build import check_columns, select
from experiments.tables_config import FigureSpec
from experiments.tables_format import fmt_value, sort_key


def facet_groups(d: pd.DataFrame, facets: list[str]) -> list[tuple[tuple, pd.DataFrame]]:
    if not facets:
        return [((), d)]
    d = results.as_keys(d, facets)
    return [(k if isinstance(k, tuple) else (k,), g) for k, g in d.groupby(facets, sort=True)]


def facet_title(facets: list[str], split_by: list[str], key: tuple) -> str:
    parts = [f"{n}={fmt_value(v)}" if n in split_by else str(v) for n, v in zip(facets, key)]
    return " · ".join(p for p in parts if p)


def panel_figure(n: int, title: str) -> tuple[Figure, list]:
    """A Figure (Agg canvas, no pyplot state) with n panels, at most 3 a row."""
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(4.6 * cols, 3.6 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    fig.suptitle(title)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def save_figure(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=110)
    return path


def with_splits(d: pd.DataFrame, facets: list[str], inner: list[str]) -> tuple[list, list]:
    """Facets extended by every transfer setting that varies inside one plotted point."""
    keys = results.split_keys(d, [*facets, *inner])
    split_by = keys[len(facets) + len(inner) :]
    return [*facets, *split_by], split_by


def draw_figure(df: pd.DataFrame, spec: FigureSpec) -> Figure | None:
    """Mean ± std over seeds of ``spec.metric`` (percent) against ``spec.x``, a line per hue
    value, a panel per facet (plus any transfer setting that varies inside a point)."""
    d = select(df, spec)
    check_columns(
        df, [spec.x, *([spec.hue] if spec.hue else []), *spec.facets], f"figure {spec.name}"
    )
    d = d.dropna(subset=[spec.x])
    if d.empty:
        return None
    facets, split_by = with_splits(d, spec.facets, [spec.x, *([spec.hue] if spec.hue else [])])
    panels = facet_groups(d, facets)
    fig, axes = panel_figure(len(panels), spec.name)
    categorical = not pd.api.types.is_numeric_dtype(d[spec.x])
    for ax, (fkey, g) in zip(axes, panels):
        order = sorted(g[spec.x].unique(), key=sort_key)
        for hue_value, h in g.groupby(spec.hue, sort=True) if spec.hue else [("", g)]:
            s = (
                h.groupby(spec.x)[spec.metric]
                .agg(["mean", "std", "count"])
                .reindex(order)
                .dropna(subset=["mean"])
            )
            xs = [order.index(v) for v in s.index] if categorical else list(s.index)
            ax.errorbar(
                xs,
                100 * s["mean"],
                yerr=100 * s["std"].fillna(0),
                marker="o",
                capsize=3,
                label=f"{spec.hue}={fmt_value(hue_value)}" if spec.hue else None,
            )
        if categorical:
            ax.set_xticks(range(len(order)), [str(v) for v in order])
        elif spec.logx:
            ax.set_xscale("log")
        ax.set_xlabel(spec.x)
        ax.set_ylabel(f"{spec.metric} (%), mean ± std over seeds")
        ax.set_title(facet_title(facets, split_by, fkey))
        ax.grid(alpha=0.3)
        if spec.hue:
            ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_figure(df: pd.DataFrame, spec: FigureSpec, out: Path) -> Path | None:
    fig = draw_figure(df, spec)
    return None if fig is None else save_figure(fig, out / f"{spec.name}.png")
