"""Scaling-law fits rendered: drawn on a matplotlib Axes (:func:`plot_scaling`; the caller owns
the Figure, no pyplot) and written as a Markdown table of fit summaries
(:func:`scaling_markdown`)."""

from __future__ import annotations

import math

import numpy as np

from experiments.scaling_bootstrap import TOO_FEW_RUNS, ScalingFit
from experiments.tables_format import MISSING, fmt_value


def plot_scaling(
    ax, n: np.ndarray, acc: np.ndarray, fit: ScalingFit, label: str = "", color=None
) -> dict[str, np.ndarray]:
    """Points (each run), the two fitted curves out to the target (dotted beyond the largest
    run: extrapolation), the target marked; returns the plotted arrays by name."""
    n, acc = np.asarray(n, dtype=float), np.asarray(acc, dtype=float)
    name = f"{label} " if label else ""
    line = ax.scatter(n, acc, s=18, color=color, label=f"{name}runs", zorder=3)
    color = color or line.get_facecolor()[0]
    grid = np.logspace(math.log10(n.min()), math.log10(max(fit.target_n, n.max())), 200)
    inside = grid <= n.max()
    plotted = {"runs_n": n, "runs_acc": acc, "grid": grid, "loglin": fit.loglin.acc(grid)}
    ax.plot(grid[inside], plotted["loglin"][inside], "--", color=color, lw=1,
            label=f"{name}log-linear")  # fmt: skip
    ax.plot(grid[~inside], plotted["loglin"][~inside], ":", color=color, lw=1)
    if fit.power is not None:
        plotted["power"] = fit.top - fit.power.err(grid)
        ax.plot(grid[inside], plotted["power"][inside], "-", color=color, lw=1.2,
                label=f"{name}power law")  # fmt: skip
        ax.plot(grid[~inside], plotted["power"][~inside], ":", color=color, lw=1.2)
        ax.scatter([fit.target_n], [fit.acc_at_target_power], marker="*", s=80, color=color,
                   label=f"{name}extrapolated to {fit.target_n:.2g} images"
                   if fit.extrapolated else None)  # fmt: skip
    ax.set_xscale("log")
    return plotted


def scaling_markdown(name: str, fits: list[dict]) -> str:
    target = fits[0]["target_images"] if fits else 3.5e9
    lines = [
        f"**{name}** (accuracy in percent; 95% t intervals on the bootstrap standard error, "
        "resampling seeds with all their runs; the prediction at "
        f"{fmt_value(target)} images is an extrapolation beyond the largest run, and the "
        "log-linear one is capped at 100%)",
        "",
        "| facet | hue | scales | runs | seeds | log-linear pts/decade | power law b "
        "| extrapolated acc (log-lin) | extrapolated acc (power) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for f in fits:
        ci = f.get("ci95", {})
        note = f.get("ci_note", "")

        def rng(k: str, digits: int = 1, ci: dict = ci, note: str = note) -> str:
            if k in ci:
                return f" [{ci[k][0]:.{digits}f}, {ci[k][1]:.{digits}f}]"
            return f" ({TOO_FEW_RUNS})" if note else ""

        power_b = f"{f['power_b']:.3f}{rng('b', 3)}" if "power_b" in f else MISSING
        power_acc = (
            f"{f['acc_at_target_power']:.1f}{rng('acc_at_target_power')}"
            if "acc_at_target_power" in f
            else MISSING
        )
        capped = " (capped: the line passes 100%)" if f.get("loglin_capped_at_top") else ""
        if not f.get("extrapolated", True):
            capped += " (interpolated)"
        lines.append(
            f"| {' · '.join(f['facet'].values())} | {f['hue']} | {f['scales']} | {f['points']} | "
            f"{f.get('resampling_units', 0)} | "
            f"{f['loglin_beta_per_decade']:+.2f}{rng('beta', 2)} | {power_b} | "
            f"{f['acc_at_target_loglin']:.1f}{capped}{rng('acc_at_target_loglin')} | {power_acc} |"
        )
    return "\n".join(lines) + "\n"
