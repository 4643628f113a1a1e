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
extra facet of a figure or a fit. LaTeX is written by pandas' ``Styler.to_latex``, which
escapes every special character. Figures are drawn on ``matplotlib.figure.Figure`` (no pyplot,
no global backend) and returned, so their plotted data can be read back.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from datamodules.errors import UserInputError
from experiments import findings, results, scaling
from experiments.config import load_config
from experiments.rundir import atomic_write_json, atomic_write_text

MISSING = "—"


@dataclass
class Selection:
    """Which rows of the index a table, figure or fit uses."""

    sweep: str = ""  # only runs this sweep planned ("" = all)
    where: dict[str, Any] = field(default_factory=dict)  # column -> value or list of values
    metric: str = "top1"  # top1 | top5 | pt_p1 | ...


@dataclass
class TableSpec(Selection):
    name: str = ""
    title: str = ""
    rows: list[str] = field(default_factory=lambda: ["model", "vocab", "images"])
    columns: list[str] = field(default_factory=lambda: ["target", "protocol"])
    digits: int = 1


@dataclass
class FigureSpec(Selection):
    name: str = ""
    x: str = "images"
    hue: str = "vocab"  # one line per value
    logx: bool = False
    facets: list[str] = field(default_factory=lambda: ["target", "protocol"])


@dataclass
class ScalingSpec(Selection):
    name: str = ""
    x: str = "images"
    hue: str = "vocab"  # one fit per value ("" = one fit)
    target_images: float = 3.5e9
    bootstrap: int = 1000
    facets: list[str] = field(default_factory=lambda: ["target", "protocol"])


@dataclass
class TablesConfig:
    runs_dir: str = "runs"
    output_dir: str = "results"
    tables: list[TableSpec] = field(default_factory=list)
    figures: list[FigureSpec] = field(default_factory=list)
    scaling: list[ScalingSpec] = field(default_factory=list)
    findings: bool = True
    findings_metric: str = "top1"
    findings_sweeps: dict[str, str] = field(default_factory=dict)  # claim key -> sweep


# ---------------------------------------------------------------------------------------------
# selection and aggregation


def select(df: pd.DataFrame, sel: Selection) -> pd.DataFrame:
    out = df
    if sel.sweep:
        out = out.loc[results.in_sweep(out, sel.sweep)]
    for col, want in sel.where.items():
        if col not in out.columns:
            raise UserInputError(f"where: unknown column '{col}'; columns: {', '.join(df.columns)}")
        values = want if isinstance(want, list) else [want]
        out = out[out[col].isin(values)]
    if sel.metric not in df.columns:
        raise UserInputError(
            f"metric '{sel.metric}' is not a column; columns: {', '.join(df.columns)}"
        )
    return out.dropna(subset=[sel.metric])


def _check_columns(df: pd.DataFrame, cols: list[str], what: str) -> None:
    bad = [c for c in cols if c not in df.columns]
    if bad:
        raise UserInputError(f"{what}: unknown columns {bad}; columns: {', '.join(df.columns)}")


def _keyed(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Missing key values become text: a random-init row shows its init in the first key."""
    d = results.as_keys(df, keys)
    if keys and "init" in d:
        other = d["init"].fillna("hashtag") != "hashtag"
        d.loc[other, keys[0]] = d.loc[other, "init"].map(lambda v: f"{v} init")
    return d


def aggregate(df: pd.DataFrame, keys: list[str], metric: str) -> pd.DataFrame:
    """mean, std (sample, over seeds and repeated runs) and n per key tuple; ``keys`` should
    already hold every varying transfer setting (:func:`experiments.results.split_keys`)."""
    d = _keyed(df, keys)
    g = d.groupby(keys, dropna=False, sort=False)[metric]
    out = g.agg(mean="mean", std="std", n="count").reset_index()
    return out


def _sort_key(value: Any):
    return (
        (0, float(value), "")
        if isinstance(value, int | float | np.number)
        else (1, 0.0, str(value))
    )


def fmt_value(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int | np.integer) and abs(value) >= 1000:
        from experiments.sweep_spec import human_count

        return human_count(value)
    return str(value)


def fmt_cell(mean: float, std: float, n: int, digits: int) -> str:
    if n == 0 or mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return MISSING
    text = f"{100 * mean:.{digits}f}"
    if n > 1 and not math.isnan(std):
        text += f" ± {100 * std:.{digits}f}"
    return f"{text} ({n})"


@dataclass
class Table:
    """A formatted table: row labels, column labels and cell strings (MISSING where empty).

    ``column_names`` are the keys of a column tuple: the spec's columns, then ``split_by``
    (transfer settings that varied inside a cell, added so that no cell mixes them)."""

    row_names: list[str]
    rows: list[tuple]
    columns: list[tuple]
    cells: list[list[str]]
    stats: pd.DataFrame  # tidy: keys, mean, std, n
    column_names: list[str] = field(default_factory=list)
    split_by: list[str] = field(default_factory=list)

    def column_label(self, column: tuple, sep: str = " · ") -> str:
        parts = []
        for name, value in zip(self.column_names, column):
            text = fmt_value(value)
            parts.append(f"{name}={text}" if name in self.split_by else text)
        return sep.join(parts)


def build_table(df: pd.DataFrame, spec: TableSpec) -> Table:
    d = select(df, spec)
    _check_columns(df, [*spec.rows, *spec.columns], f"table {spec.name}")
    keys = [*spec.rows, *spec.columns]
    keys = results.split_keys(_keyed(d, keys), keys)
    split_by = keys[len(spec.rows) + len(spec.columns) :]
    col_keys = [*spec.columns, *split_by]
    stats = aggregate(d, keys, spec.metric)
    key = lambda t: tuple(_sort_key(v) for v in t)  # noqa: E731
    rows = sorted({tuple(r) for r in stats[spec.rows].itertuples(index=False)}, key=key)
    cols = sorted({tuple(r) for r in stats[col_keys].itertuples(index=False)}, key=key)
    lookup = {
        tuple(r[: len(keys)]): r
        for r in stats[[*spec.rows, *col_keys, "mean", "std", "n"]].itertuples(index=False)
    }
    cells = []
    for r in rows:
        line = []
        for c in cols:
            hit = lookup.get((*r, *c))
            line.append(
                MISSING if hit is None else fmt_cell(hit[-3], hit[-2], int(hit[-1]), spec.digits)
            )
        cells.append(line)
    return Table(list(spec.rows), rows, cols, cells, stats, col_keys, split_by)


def to_markdown(t: Table, title: str = "") -> str:
    head = [*t.row_names, *(t.column_label(c) for c in t.columns)]
    lines = [f"**{title}**", ""] if title else []
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "|".join("---" for _ in head) + "|")
    for r, cells in zip(t.rows, t.cells):
        lines.append("| " + " | ".join([*(fmt_value(v) for v in r), *cells]) + " |")
    return "\n".join(lines) + "\n"


def latex_escape(text: str) -> str:
    """``text`` escaped for LaTeX by pandas' own rule (``Styler.format(escape="latex")``)."""
    frame = pd.DataFrame([[str(text)]])
    styler = frame.style.format(escape="latex").hide(axis="index").hide(axis="columns")
    return styler.to_string(delimiter="").rstrip("\n")


def _tex_symbols(text: str) -> str:
    """After escaping: ± and the missing-cell dash as LaTeX writes them."""
    return str(text).replace("±", r"$\pm$").replace(MISSING, "---")


def to_latex(t: Table, title: str = "") -> str:
    """A booktabs table through ``Styler.to_latex``: labels and cells escaped by pandas."""
    head = [*t.row_names, *(t.column_label(c, " / ") for c in t.columns)]
    body = [[*(fmt_value(v) for v in r), *cells] for r, cells in zip(t.rows, t.cells)]
    frame = pd.DataFrame(body, columns=pd.Index(head), dtype=object)
    styler = (
        frame.style.hide(axis="index")
        .format(escape="latex", formatter=_tex_symbols)
        .format_index(escape="latex", axis="columns")
    )
    return styler.to_latex(
        column_format="l" * len(t.row_names) + "r" * len(t.columns),
        hrules=True,
        caption=latex_escape(title) if title else None,
        position="t",
        position_float="centering",
        environment="table",
    )


# ---------------------------------------------------------------------------------------------
# figures and fits


def _facets(d: pd.DataFrame, facets: list[str]) -> list[tuple[tuple, pd.DataFrame]]:
    if not facets:
        return [((), d)]
    d = results.as_keys(d, facets)
    return [(k if isinstance(k, tuple) else (k,), g) for k, g in d.groupby(facets, sort=True)]


def _facet_title(facets: list[str], split_by: list[str], key: tuple) -> str:
    parts = [f"{n}={fmt_value(v)}" if n in split_by else str(v) for n, v in zip(facets, key)]
    return " · ".join(p for p in parts if p)


def _axes(n: int, title: str) -> tuple[Figure, list]:
    """A Figure (Agg canvas, no pyplot state) with n panels, at most 3 a row."""
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(4.6 * cols, 3.6 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    fig.suptitle(title)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=110)
    return path


def _with_splits(d: pd.DataFrame, facets: list[str], inner: list[str]) -> tuple[list, list]:
    """Facets extended by every transfer setting that varies inside one plotted point."""
    keys = results.split_keys(d, [*facets, *inner])
    split_by = keys[len(facets) + len(inner) :]
    return [*facets, *split_by], split_by


def draw_figure(df: pd.DataFrame, spec: FigureSpec) -> Figure | None:
    """Mean ± std over seeds of ``spec.metric`` (percent) against ``spec.x``, a line per hue
    value, a panel per facet (plus any transfer setting that varies inside a point)."""
    d = select(df, spec)
    _check_columns(
        df, [spec.x, *([spec.hue] if spec.hue else []), *spec.facets], f"figure {spec.name}"
    )
    d = d.dropna(subset=[spec.x])
    if d.empty:
        return None
    facets, split_by = _with_splits(d, spec.facets, [spec.x, *([spec.hue] if spec.hue else [])])
    panels = _facets(d, facets)
    fig, axes = _axes(len(panels), spec.name)
    categorical = not pd.api.types.is_numeric_dtype(d[spec.x])
    for ax, (fkey, g) in zip(axes, panels):
        order = sorted(g[spec.x].unique(), key=_sort_key)
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
        ax.set_title(_facet_title(facets, split_by, fkey))
        ax.grid(alpha=0.3)
        if spec.hue:
            ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_figure(df: pd.DataFrame, spec: FigureSpec, out: Path) -> Path | None:
    fig = draw_figure(df, spec)
    return None if fig is None else _save(fig, out / f"{spec.name}.png")


def fit_groups(df: pd.DataFrame, spec: ScalingSpec) -> tuple[Figure | None, list[dict]]:
    """Fit every (facet, hue) group with >= 2 data scales; the figure and the fits' summaries.
    The bootstrap resamples seeds (the index's ``seed``) with all their runs."""
    d = select(df, spec).dropna(subset=[spec.x])
    d = d[d[spec.x].astype(float) > 0]
    fits: list[dict] = []
    if d.empty:
        return None, fits
    facets, split_by = _with_splits(d, spec.facets, [spec.x, *([spec.hue] if spec.hue else [])])
    panels = _facets(d, facets)
    fig, axes = _axes(len(panels), f"{spec.name}: {spec.metric} vs {spec.x}")
    for ax, (fkey, g) in zip(axes, panels):
        for hue_value, h in g.groupby(spec.hue, sort=True) if spec.hue else [("", g)]:
            n = h[spec.x].astype(float).to_numpy()
            acc = 100 * h[spec.metric].astype(float).to_numpy()  # percent, like the tables
            if len(np.unique(n)) < 2:
                continue
            seeds = h["seed"].to_numpy() if h["seed"].notna().all() else None
            fit = scaling.fit_scaling(
                n,
                acc,
                seeds=seeds,
                target_n=spec.target_images,
                top=100.0,
                bootstrap=spec.bootstrap,
            )
            label = f"{spec.hue}={fmt_value(hue_value)}" if spec.hue else ""
            scaling.plot_scaling(ax, n, acc, fit, label=label)
            fits.append(
                {
                    "facet": dict(zip(facets, map(str, fkey))),
                    "hue": str(hue_value),
                    **fit.summary(),
                }
            )
        ax.set_xlabel(f"{spec.x} (log)")
        ax.set_ylabel(f"{spec.metric} (%)")
        ax.set_title(_facet_title(facets, split_by, fkey))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    fig.tight_layout()
    return fig, fits


def run_scaling(df: pd.DataFrame, spec: ScalingSpec, out: Path) -> list[dict]:
    """:func:`fit_groups`, written as <name>.json and <name>.png (nothing when no group fits)."""
    fig, fits = fit_groups(df, spec)
    if fits and fig is not None:
        _save(fig, out / f"{spec.name}.png")
        atomic_write_json(out / f"{spec.name}.json", fits)
    return fits


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
            return f" ({scaling.TOO_FEW_RUNS})" if note else ""

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


# ---------------------------------------------------------------------------------------------
# the verb


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
