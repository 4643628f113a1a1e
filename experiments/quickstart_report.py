"""The quickstart's results: a table (Markdown, CSV) and a figure of the gain over random init.

Built from the results index like every other table (``experiments.results``), so the numbers
are those in the runs' metrics.json files, with mean ± std (n) over seeds and ``—`` where a run
is missing. The figure shows what the quickstart exists to compare: per target, each
pretrained network's top-1 minus the strongest random-init baseline's (same feature protocol),
in points, with the baseline's seed spread as the error bar.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from experiments import results
from experiments.rundir import atomic_write_text
from experiments.tables import TableSpec, build_table, fmt_value, to_markdown

ROWS = ["sampling", "loss", "features", "bn_recalibrate"]
TARGET_NAMES = {
    "openclipart_images": "OpenClipart held-out images",
    "openclipart_categories": "OpenClipart held-out categories",
    "fashion_mnist": "Fashion-MNIST",
}


def gains(stats: pd.DataFrame) -> pd.DataFrame:
    """Per (pretrained row, target): top-1 gain over the random-init row with the same
    features, in points; ``err`` combines both rows' seed spreads (a single seed counts 0)."""
    is_random = stats["sampling"].astype(str).str.endswith(" init")
    base = stats[is_random].set_index(["features", "target"])
    out = []
    for _, r in stats[~is_random].iterrows():
        key = (r["features"], r["target"])
        if key not in base.index:
            continue
        b = base.loc[key]
        b = b.iloc[0] if isinstance(b, pd.DataFrame) else b
        spread = np.nan_to_num([r["std"], b["std"]])
        out.append(
            {
                "network": " / ".join(fmt_value(r[k]) for k in ("sampling", "loss", "features")),
                "target": r["target"],
                "gain": 100 * (float(r["mean"]) - float(b["mean"])),
                "err": 100 * float(np.sqrt((spread**2).sum())),
                "baseline": 100 * float(b["mean"]),
                "baseline_n": int(b["n"]),
            }
        )
    return pd.DataFrame(out, columns=["network", "target", "gain", "err", "baseline", "baseline_n"])


def draw_gains(g: pd.DataFrame, metric: str) -> Figure:
    targets = list(dict.fromkeys(g["target"]))
    networks = list(dict.fromkeys(g["network"]))
    fig = Figure(figsize=(max(6.0, 2.2 * len(targets)), 4.0))
    ax = fig.subplots()
    width = 0.8 / max(1, len(networks))
    for i, net in enumerate(networks):
        sub = g[g["network"] == net].set_index("target").reindex(targets)
        x = np.arange(len(targets)) + (i - (len(networks) - 1) / 2) * width
        ax.bar(x, sub["gain"], width, yerr=sub["err"].fillna(0), capsize=3, label=net)
    labels = []
    for t in targets:
        b = g[g["target"] == t].iloc[0]
        labels.append(f"{TARGET_NAMES.get(t, t)}\n(random init {b['baseline']:.1f})")
    ax.set_xticks(np.arange(len(targets)), labels, fontsize=8)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_ylabel(f"{metric} gain over random init (points)")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def write_report(runs_dir: str | Path, title: str, metric: str = "top1") -> dict[str, Path]:
    runs_dir = Path(runs_dir)
    df = results.build_index(runs_dir)
    df = df[df["protocol"].notna()]
    spec = TableSpec(name="quickstart", rows=ROWS, columns=["target"], metric=metric)
    table = build_table(df, spec)
    note = (
        f"\nLinear-probe {metric} (%); mean ± std (n seeds). OpenClipart targets: the mean over "
        "5 stratified folds whose near-duplicate copies stay in one fold; held-out images = "
        "new images of the pretraining categories, held-out categories = folders pretraining "
        "never saw. Fashion-MNIST: at most 500 images per class in train and in test. Rows: "
        "pretraining sampling / loss / probed features (`all`: every stage pooled) / whether "
        "batch-norm statistics were re-estimated on the probe's training images (random init "
        "only: its strongest form).\n"
    )
    paths = {
        "markdown": atomic_write_text(runs_dir / "results.md", to_markdown(table, title) + note),
        "csv": runs_dir / "results.csv",
        "figure": runs_dir / "results.png",
    }
    atomic_write_text(paths["csv"], table.stats.to_csv(index=False))
    g = gains(table.stats)
    atomic_write_text(runs_dir / "gains.csv", g.to_csv(index=False))
    if len(g):
        draw_gains(g, metric).savefig(paths["figure"], dpi=120)
    return paths
