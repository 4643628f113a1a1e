"""The paper's qualitative claims beside what this project's runs measured.

Every measurement is computed from the results index (:mod:`experiments.results`) by comparing
runs that differ only in the claim's axis: runs are averaged over seeds within one setup, the
two settings are differenced within each matched setup (same data scale, vocabulary, model, ...,
target and protocol), and the differences are averaged. A claim whose axis has no such pair in
the index says "not run". Accuracies are reported in points (percent).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

# Setup columns that identify a pretraining recipe (seed excluded: it is what we average over).
SETUP = [
    "source",
    "scale",
    "vocab",
    "sampling",
    "sampling_combine",
    "label_noise",
    "model",
    "width_per_group",
    "loss",
]
EVAL = ["target", "protocol"]
NOT_RUN = "not run"


@dataclass
class Measurement:
    text: str
    groups: int = 0
    sweeps: str = ""


def _sweeps(rows: pd.DataFrame) -> str:
    """The sweeps that planned the rows, plus a note when some rows came from no sweep."""
    names: set[str] = set()
    outside = False
    for value in rows.get("sweeps", pd.Series(dtype=object)).fillna(""):
        parts = [n for n in str(value).split(",") if n]
        names.update(parts)
        outside = outside or not parts
    return ",".join([*sorted(names), *(["(runs outside a sweep)"] if outside else [])])


def _setup_means(
    df: pd.DataFrame, axis: str, exclude: tuple[str, ...], metric: str
) -> pd.DataFrame:
    """Mean metric over seeds per (matched setup, axis value); rows = setups, columns = values."""
    keys = [k for k in SETUP if k != axis and k not in exclude] + EVAL
    d = df.dropna(subset=[metric, axis]).copy()
    d[keys] = d[keys].astype(object).where(d[keys].notna(), "")
    return d.groupby([*keys, axis], dropna=False)[metric].mean().unstack(axis)


def paired_difference(
    df: pd.DataFrame,
    axis: str,
    treat,
    control,
    metric: str = "top1",
    exclude: tuple[str, ...] = (),
) -> Measurement | None:
    """Mean over matched setups of metric(treat) - metric(control), in points."""
    means = _setup_means(df, axis, exclude, metric)
    if treat not in means.columns or control not in means.columns:
        return None
    both = means[[treat, control]].dropna()
    if both.empty:
        return None
    diff = 100 * (both[treat] - both[control])
    used = df[df[axis].isin([treat, control])]
    spread = f" (range {diff.min():+.1f} to {diff.max():+.1f})" if len(diff) > 1 else ""
    return Measurement(f"{diff.mean():+.1f} points{spread}", len(diff), _sweeps(used))


def extremes_at_largest_scale(
    df: pd.DataFrame, axis: str, order_by: str, metric: str, exclude: tuple[str, ...]
) -> Measurement | None:
    """At the largest data scale run: metric(largest `order_by`) - metric(smallest)."""
    d = df.dropna(subset=[metric, axis, "scale"])
    if d.empty:
        return None
    d = d[d["scale"] == d["scale"].max()]
    sizes = d.groupby(axis)[order_by].mean().dropna().sort_values()
    if len(sizes) < 2:
        return None
    small, big = sizes.index[0], sizes.index[-1]
    m = paired_difference(d, axis, big, small, metric, exclude)
    if m is not None:
        m.text = f"{axis} {big} vs {small}: {m.text} at scale {d['scale'].max():g}"
    return m


def log_linear_slope(df: pd.DataFrame, metric: str) -> Measurement | None:
    """Per setup with >= 2 data scales: slope of metric vs log10(images) and its R^2."""
    d = df.dropna(subset=[metric, "images"])
    d = d[d["images"] > 0]
    keys = [k for k in SETUP if k != "scale"] + EVAL
    d = d.copy()
    d[keys] = d[keys].astype(object).where(d[keys].notna(), "")
    slopes, r2s = [], []
    for _, g in d.groupby(keys, dropna=False):
        if g["images"].nunique() < 2:
            continue
        x, y = np.log10(g["images"].astype(float)), 100 * g[metric].astype(float)
        beta, alpha = np.polyfit(x, y, 1)
        resid = y - (alpha + beta * x)
        ss = float(((y - y.mean()) ** 2).sum())
        slopes.append(beta)
        r2s.append(1 - float((resid**2).sum()) / ss if ss > 0 else 1.0)
    if not slopes:
        return None
    text = f"{np.mean(slopes):+.1f} points per 10x images (R² {np.mean(r2s):.2f})"
    return Measurement(text, len(slopes), _sweeps(d))


@dataclass
class Claim:
    claim: str
    paper: str
    measure: Callable[[pd.DataFrame, str], Measurement | None]


CLAIMS = [
    Claim(
        "transfer accuracy grows log-linearly with pretraining images",
        "roughly linear in log(images), a few million to 3.5B",
        lambda df, m: log_linear_slope(df, m),
    ),
    Claim(
        "square-root sampling beats natural",
        "+5 to +6 points (ImageNet transfer)",
        lambda df, m: paired_difference(df, "sampling", "sqrt", "natural", m),
    ),
    Claim(
        "uniform sampling beats natural",
        "+5 to +6 points (ImageNet transfer)",
        lambda df, m: paired_difference(df, "sampling", "uniform", "natural", m),
    ),
    Claim(
        "10% label noise costs little",
        "< 1 point lost",
        lambda df, m: paired_difference(df, "label_noise", 0.1, 0.0, m),
    ),
    Claim(
        "25% label noise costs about 2 points",
        "about -2 points",
        lambda df, m: paired_difference(df, "label_noise", 0.25, 0.0, m),
    ),
    Claim(
        "50% label noise",
        "not verified in the paper's sources",
        lambda df, m: paired_difference(df, "label_noise", 0.5, 0.0, m),
    ),
    Claim(
        "a bigger hashtag vocabulary helps at scale",
        "17k > 1.5k at the largest scales",
        lambda df, m: extremes_at_largest_scale(df, "vocab", "vocab_size", m, ("vocab_size",)),
    ),
    Claim(
        "a wider model helps at scale",
        "32x16d > 32x8d > 32x4d, more so with more data",
        lambda df, m: extremes_at_largest_scale(
            df, "width_per_group", "width_per_group", m, ("model",)
        ),
    ),
    Claim(
        "multi-label softmax beats per-hashtag sigmoid",
        "softmax better",
        lambda df, m: paired_difference(df, "loss", "softmax", "sigmoid", m),
    ),
]


def findings_table(df: pd.DataFrame, metric: str = "top1") -> pd.DataFrame:
    """One row per claim and (target, protocol): the paper's statement, the measurement, its
    number of matched setups, and the sweeps whose runs produced it."""
    pretrained = df[df["init"].fillna("hashtag") == "hashtag"] if "init" in df else df
    evals = pretrained.dropna(subset=[metric])[EVAL].drop_duplicates()
    rows = []
    for claim in CLAIMS:
        found = False
        for _, ev in evals.iterrows():
            sub = pretrained[
                (pretrained["target"] == ev["target"]) & (pretrained["protocol"] == ev["protocol"])
            ]
            m = claim.measure(sub, metric)
            if m is None:
                continue
            found = True
            rows.append(
                {
                    "claim": claim.claim,
                    "paper": claim.paper,
                    "measured": m.text,
                    "target": ev["target"],
                    "protocol": ev["protocol"],
                    "setups": m.groups,
                    "sweeps": m.sweeps,
                }
            )
        if not found:
            rows.append(
                {
                    "claim": claim.claim,
                    "paper": claim.paper,
                    "measured": NOT_RUN,
                    "target": "—",
                    "protocol": "—",
                    "setups": 0,
                    "sweeps": "—",
                }
            )
    return pd.DataFrame(rows)
