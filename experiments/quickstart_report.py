"""The quickstart's results: a table (Markdown, CSV) and a bar figure, from its run directories.

Built from the results index like every other table (``experiments.results``), so the numbers
are those in the runs' metrics.json files, with mean ± std over seeds and ``—`` where a run is
missing.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from experiments import results  # noqa: E402
from experiments.rundir import atomic_write_text  # noqa: E402
from experiments.tables import TableSpec, build_table, fmt_value, to_markdown  # noqa: E402

ROWS = ["sampling", "loss", "features"]


def _label(row: tuple) -> str:
    return " / ".join(fmt_value(v) for v in row if v not in ("", None))


def plot_bars(table, metric: str, out: Path) -> Path:
    """Grouped bars: one group per target, one bar per network (row), error bars = std."""
    stats = table.stats
    targets = [c[0] for c in table.columns]
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(targets) * len(table.rows) / 3), 4))
    width = 0.8 / max(1, len(table.rows))
    for i, row in enumerate(table.rows):
        means, stds = [], []
        for target in targets:
            hit = stats
            for key, value in zip(ROWS, row):
                hit = hit[hit[key] == value]
            hit = hit[hit["target"] == target]
            means.append(float(hit["mean"].iloc[0]) if len(hit) else np.nan)
            std = float(hit["std"].iloc[0]) if len(hit) else np.nan
            stds.append(0.0 if np.isnan(std) else std)
        x = np.arange(len(targets)) + (i - (len(table.rows) - 1) / 2) * width
        ax.bar(x, means, width, yerr=stds, capsize=3, label=_label(row))
    ax.set_xticks(np.arange(len(targets)), targets)
    ax.set_ylabel(f"linear-probe {metric}")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=3)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(out)
    return out


def write_report(runs_dir: str | Path, title: str, metric: str = "top1") -> dict[str, Path]:
    runs_dir = Path(runs_dir)
    df = results.build_index(runs_dir)
    df = df[df["protocol"].notna()]
    spec = TableSpec(name="quickstart", rows=ROWS, columns=["target"], metric=metric)
    table = build_table(df, spec)
    note = (
        f"\nLinear-probe {metric} (%) on each target's validation split; mean ± std (number of "
        "seeds). Rows: pretraining sampling / loss / probed features (`last`: the last stage, "
        "`all`: every stage pooled). Random init is probed with batch-norm statistics "
        "re-estimated on target images.\n"
    )
    markdown = to_markdown(table, title=title) + note
    paths = {
        "markdown": atomic_write_text(runs_dir / "results.md", markdown),
        "csv": runs_dir / "results.csv",
        "figure": plot_bars(table, metric, runs_dir / "results.png"),
    }
    atomic_write_text(paths["csv"], table.stats.to_csv(index=False))
    return paths
