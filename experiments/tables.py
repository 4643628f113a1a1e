"""`python -m experiments tables <configs/tables/x.yaml>`: results index, paper tables, figures,
scaling-law fits and the findings table, all rebuilt from run directories.

Outputs under ``output_dir``: ``results.csv``/``.parquet`` (the index); per table
``<name>.md``, ``<name>.tex`` (formatted ``mean ± std (n)`` over seeds, percent) and
``<name>.csv`` (the numbers: mean, std, n, as fractions like metrics.json); per figure
``<name>.png``; per scaling fit ``<name>.png`` and ``<name>.json``; ``findings.md``/``.csv``.
A cell with no run is written ``—``, never filled in.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from datamodules.errors import UserInputError  # noqa: E402
from experiments import findings, results, scaling  # noqa: E402
from experiments.config import load_config  # noqa: E402
from experiments.rundir import atomic_write_json, atomic_write_text  # noqa: E402

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
    d = df.copy()
    for k in keys:
        d[k] = d[k].astype(object).where(d[k].notna(), "")
    if keys and "init" in d:
        other = d["init"].fillna("hashtag") != "hashtag"
        d.loc[other, keys[0]] = d.loc[other, "init"].map(lambda v: f"{v} init")
    return d


def aggregate(df: pd.DataFrame, keys: list[str], metric: str) -> pd.DataFrame:
    """mean, std (sample, over seeds and repeated runs) and n per key tuple."""
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
    """A formatted table: row labels, column labels and cell strings (MISSING where empty)."""

    row_names: list[str]
    rows: list[tuple]
    columns: list[tuple]
    cells: list[list[str]]
    stats: pd.DataFrame  # tidy: keys, mean, std, n


def build_table(df: pd.DataFrame, spec: TableSpec) -> Table:
    d = select(df, spec)
    _check_columns(df, [*spec.rows, *spec.columns], f"table {spec.name}")
    stats = aggregate(d, [*spec.rows, *spec.columns], spec.metric)
    key = lambda t: tuple(_sort_key(v) for v in t)  # noqa: E731
    rows = sorted({tuple(r) for r in stats[spec.rows].itertuples(index=False)}, key=key)
    cols = sorted({tuple(r) for r in stats[spec.columns].itertuples(index=False)}, key=key)
    lookup = {
        tuple(r[: len(spec.rows) + len(spec.columns)]): r
        for r in stats[[*spec.rows, *spec.columns, "mean", "std", "n"]].itertuples(index=False)
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
    return Table(list(spec.rows), rows, cols, cells, stats)


def to_markdown(t: Table, title: str = "") -> str:
    head = [*t.row_names, *(" · ".join(fmt_value(v) for v in c) for c in t.columns)]
    lines = [f"**{title}**", ""] if title else []
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "|".join("---" for _ in head) + "|")
    for r, cells in zip(t.rows, t.cells):
        lines.append("| " + " | ".join([*(fmt_value(v) for v in r), *cells]) + " |")
    return "\n".join(lines) + "\n"


def _tex(text: str) -> str:
    text = str(text)
    for a, b in (
        ("\\", r"\textbackslash{}"),
        ("_", r"\_"),
        ("%", r"\%"),
        ("&", r"\&"),
        ("#", r"\#"),
    ):
        text = text.replace(a, b)
    return text.replace("±", r"$\pm$").replace(MISSING, "---")


def to_latex(t: Table, title: str = "") -> str:
    head = [*t.row_names, *(" / ".join(fmt_value(v) for v in c) for c in t.columns)]
    lines = [r"\begin{table}[t]", r"\centering"]
    if title:
        lines.append(rf"\caption{{{_tex(title)}}}")
    lines += [
        rf"\begin{{tabular}}{{{'l' * len(t.row_names)}{'r' * len(t.columns)}}}",
        r"\toprule",
        " & ".join(_tex(h) for h in head) + r" \\",
        r"\midrule",
    ]
    for r, cells in zip(t.rows, t.cells):
        lines.append(" & ".join(_tex(v) for v in [*(fmt_value(x) for x in r), *cells]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# figures and fits


def _facets(d: pd.DataFrame, facets: list[str]) -> list[tuple[tuple, pd.DataFrame]]:
    if not facets:
        return [((), d)]
    return [(k if isinstance(k, tuple) else (k,), g) for k, g in d.groupby(facets, sort=True)]


def _axes(n: int, title: str):
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.6 * rows), squeeze=False)
    fig.suptitle(title)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def plot_figure(df: pd.DataFrame, spec: FigureSpec, out: Path) -> Path | None:
    d = select(df, spec)
    _check_columns(
        df, [spec.x, *([spec.hue] if spec.hue else []), *spec.facets], f"figure {spec.name}"
    )
    d = d.dropna(subset=[spec.x])
    if d.empty:
        return None
    panels = _facets(d, spec.facets)
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
        ax.set_ylabel(f"{spec.metric} (%)")
        ax.set_title(" · ".join(map(str, fkey)))
        ax.grid(alpha=0.3)
        if spec.hue:
            ax.legend(fontsize=7)
    fig.tight_layout()
    path = out / f"{spec.name}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def run_scaling(df: pd.DataFrame, spec: ScalingSpec, out: Path) -> list[dict]:
    """Fit every (facet, hue) group with >= 2 data scales; write <name>.json and <name>.png."""
    d = select(df, spec).dropna(subset=[spec.x])
    d = d[d[spec.x].astype(float) > 0]
    fits: list[dict] = []
    panels = _facets(d, spec.facets) if not d.empty else []
    if not panels:
        return fits
    fig, axes = _axes(len(panels), f"{spec.name}: {spec.metric} vs {spec.x}")
    for ax, (fkey, g) in zip(axes, panels):
        for hue_value, h in g.groupby(spec.hue, sort=True) if spec.hue else [("", g)]:
            n = h[spec.x].astype(float).to_numpy()
            acc = 100 * h[spec.metric].astype(float).to_numpy()  # percent, like the tables
            if len(np.unique(n)) < 2:
                continue
            fit = scaling.fit_scaling(
                n, acc, target_n=spec.target_images, top=100.0, bootstrap=spec.bootstrap
            )
            label = f"{spec.hue}={fmt_value(hue_value)}" if spec.hue else ""
            scaling.plot_scaling(ax, n, acc, fit, label=label)
            fits.append(
                {
                    "facet": dict(zip(spec.facets, map(str, fkey))),
                    "hue": str(hue_value),
                    **fit.summary(),
                }
            )
        ax.set_xlabel(f"{spec.x} (log)")
        ax.set_ylabel(f"{spec.metric} (%)")
        ax.set_title(" · ".join(map(str, fkey)))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out / f"{spec.name}.png", dpi=110)
    plt.close(fig)
    atomic_write_json(out / f"{spec.name}.json", fits)
    return fits


def scaling_markdown(name: str, fits: list[dict]) -> str:
    lines = [
        f"**{name}** (accuracy in percent; 95% bootstrap intervals over seeds)",
        "",
        "| facet | hue | scales | runs | log-linear pts/decade | power law b | acc at target (log-lin) | acc at target (power) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for f in fits:
        ci = f.get("ci95", {})

        def rng(k: str, digits: int = 1, ci: dict = ci) -> str:
            return f" [{ci[k][0]:.{digits}f}, {ci[k][1]:.{digits}f}]" if k in ci else ""

        power_b = f"{f['power_b']:.3f}{rng('b', 3)}" if "power_b" in f else MISSING
        power_acc = (
            f"{f['acc_at_target_power']:.1f}{rng('acc_at_target_power')}"
            if "acc_at_target_power" in f
            else MISSING
        )
        lines.append(
            f"| {' · '.join(f['facet'].values())} | {f['hue']} | {f['scales']} | {f['points']} | "
            f"{f['loglin_beta_per_decade']:+.2f}{rng('beta', 2)} | {power_b} | "
            f"{f['acc_at_target_loglin']:.1f}{rng('acc_at_target_loglin')} | {power_acc} |"
        )
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# the verb


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="tables config, e.g. configs/tables/mini.yaml")
    parser.add_argument("overrides", nargs="*", help="dot-list overrides, e.g. runs_dir=runs2")


def build_all(cfg: TablesConfig) -> dict[str, list[Path]]:
    """Write everything the config asks for; returns the written files by kind."""
    df = results.build_index(cfg.runs_dir)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, list[Path]] = {"index": list(results.write_index(df, out))}
    if df.empty:
        print(f"tables: no complete runs under {cfg.runs_dir}; every table cell is {MISSING}")
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
        table = findings.findings_table(df, cfg.findings_metric)
        table.to_csv(out / "findings.csv", index=False)
        md = [
            "| claim | paper | measured | target | protocol | setups | sweeps |",
            "|---|---|---|---|---|---|---|",
        ]
        md += [
            "| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)
        ]
        written["findings"] = [
            out / "findings.csv",
            atomic_write_text(out / "findings.md", "\n".join(md) + "\n"),
        ]
    return written


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
