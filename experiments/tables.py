"""`python -m experiments tables <configs/tables/x.yaml>`: results index, paper tables, figures,
scaling-law fits and the findings table, all rebuilt from run directories.

Outputs under ``output_dir``: ``results.csv``/``.parquet`` (the index); per table
``<name>.md``, ``<name>.tex`` (formatted ``mean ± std (n)`` over seeds, percent) and
``<name>.csv`` (the numbers: mean, std, n, as fractions like metrics.json); per figure
``<name>.png``; per scaling fit ``<name>.png`` and ``<name>.json``; ``findings.md``/``.csv``.
A cell with no run is written ``—``, never filled in; a cell of one run has no spread and is
written ``mean (1)``. Runs that differ in a transfer setting (features, batch-norm re-estimation,
resolution, folds, target split: :data:`experiments.results.TRANSFER_SETTINGS`) are never one
cell: a setting that varies inside a cell becomes an extra column key (``features=all``), an
extra facet of a figure or a fit.

This module is the verb (:func:`run`, :func:`build_all`: everything a config asks for) and
holds the names other modules use. The parts: :mod:`experiments.tables_config` (the config
schema), :mod:`experiments.tables_build` (selection, aggregation over seeds, the tables),
:mod:`experiments.tables_format` (values and cells), :mod:`experiments.tables_render`
(Markdown and LaTeX), :mod:`experiments.tables_figures` (figures) and
:mod:`experiments.tables_scaling` (scaling-law fits per facet). Figures are drawn on
``matplotlib.figure.Figure`` (no pyplot, no global backend) and returned, so their plotted
data can be read back.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pandas as pd

from datamodules.errors import UserInputError
from experiments import findings, results
from experiments.config import load_config
from experiments.rundir import atomic_write_text
from experiments.scaling_render import scaling_markdown
from experiments.tables_build import Table, aggregate, build_table, select
from experiments.tables_config import FigureSpec, ScalingSpec, Selection, TablesConfig, TableSpec
from experiments.tables_figures import draw_figure, plot_figure
from experiments.tables_format import MISSING, fmt_cell, fmt_value
from experiments.tables_render import latex_escape, to_latex, to_markdown
from experiments.tables_scaling import fit_groups, run_scaling

__all__ = [
    "FigureSpec",
    "MISSING",
    "ScalingSpec",
    "Selection",
    "Table",
    "TableSpec",
    "TablesConfig",
    "add_arguments",
    "aggregate",
    "build_all",
    "build_table",
    "draw_figure",
    "fit_groups",
    "fmt_cell",
    "fmt_value",
    "latex_escape",
    "plot_figure",
    "resolved_configs",
    "run",
    "run_scaling",
    "scaling_markdown",
    "select",
    "to_latex",
    "to_markdown",
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="tables config, e.g. configs/tables/mini.yaml")
    parser.add_argument("overrides", nargs="*", help="dot-list overrides, e.g. runs_dir=runs2")


def build_all(cfg: TablesConfig, df: pd.DataFrame | None = None) -> dict[str, list[Path]]:
    """Write everything the config asks for, from the run directories under ``cfg.runs_dir``
    or from an index already built (``df``, e.g. read back from committed per-run records);
    returns the written files by kind."""
    source = f"under {cfg.runs_dir}" if df is None else "in the records"
    df = results.build_index(cfg.runs_dir) if df is None else df
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, list[Path]] = {"index": list(results.write_index(df, out))}
    if df.empty:
        print(f"tables: no complete runs {source}; every table cell is {MISSING}")
    for spec in cfg.tables:
        t = build_table(df, spec)
        title = spec.title or spec.name
        written.setdefault("tables", []).extend(
            [
                atomic_write_text(out / f"{spec.name}.md", to_markdown(t, title)),
                atomic_write_text(out / f"{spec.name}.tex", to_latex(t, title)),
            ]
        )
        t.stats.to_csv(out / f"{spec.name}.csv", index=False)
        written["tables"].append(out / f"{spec.name}.csv")
    for spec in cfg.figures:
        path = plot_figure(df, spec, out)
        if path:
            written.setdefault("figures", []).append(path)
    for spec in cfg.scaling:
        fits = run_scaling(df, spec, out)
        if fits:
            written.setdefault("scaling", []).extend(
                [out / f"{spec.name}.png", out / f"{spec.name}.json"]
            )
            written["scaling"].append(
                atomic_write_text(out / f"{spec.name}.md", scaling_markdown(spec.name, fits))
            )
    if cfg.findings:
        table = findings.findings_table(df, cfg.findings_metric, cfg.findings_sweeps)
        table.to_csv(out / "findings.csv", index=False)
        written["findings"] = [
            out / "findings.csv",
            atomic_write_text(out / "findings.md", findings.findings_markdown(table)),
        ]
    return written


def resolved_configs(args: argparse.Namespace) -> list[tuple[str, Any]]:
    """``--print-config``: the tables config with the command's overrides."""
    return [("", load_config(args.config, args.overrides, schema=TablesConfig))]


def run(args: argparse.Namespace) -> int:
    cfg: TablesConfig = load_config(args.config, args.overrides, schema=TablesConfig)
    for i, spec in enumerate([*cfg.tables, *cfg.figures, *cfg.scaling]):
        if not spec.name:
            raise UserInputError(
                f"{args.config}: entry {i} of tables/figures/scaling needs `name:`"
            )
    written = build_all(cfg)
    for kind, paths in written.items():
        print(f"{kind}: " + ", ".join(str(p) for p in paths))
    summary = json.dumps({k: len(v) for k, v in written.items()})
    print(f"tables: wrote {summary} under {cfg.output_dir}")
    return 0
