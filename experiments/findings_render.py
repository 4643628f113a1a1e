"""``findings.md``: the findings table (:mod:`experiments.findings_table`) as Markdown."""

from __future__ import annotations

import math

import pandas as pd

from experiments.findings_stats import MISSING


def _num(v: float, fmt: str = "+.2f") -> str:
    return MISSING if v is None or not math.isfinite(v) else format(v, fmt)


def findings_markdown(table: pd.DataFrame) -> str:
    """findings.md: a row per claim (and evaluation setting), differences in points."""
    lines = [
        "Paired per-seed differences, in points (percent). n = seeds with a matched pair; 95% CI ="
        " t interval over seeds. Verdict: agrees = the CI lies entirely on the paper's side of"
        " 0; contradicts = entirely on the other side; inconclusive = the CI contains 0, or"
        " n < 3. The size column compares the CI with the paper's figure; it does not change"
        " the verdict.",
        "",
        "| claim | comparison | n | mean diff | 95% CI | verdict | size vs paper "
        "| paper's figure | evaluated on | sweeps |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in table.itertuples(index=False):
        ci = MISSING if not math.isfinite(r.ci_lo) else f"[{r.ci_lo:+.2f}, {r.ci_hi:+.2f}]"
        cells = [r.claim, r.comparison, str(r.n), _num(r.mean_diff), ci, r.verdict,
                 r.size_vs_paper, r.paper, r.evaluated_on, r.sweeps]  # fmt: skip
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"
