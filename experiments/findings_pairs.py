"""Paired per-seed differences: a claim's number for every seed, from the results index.

**Pairs.** Every claim names an axis and two arms (e.g. ``sampling``: ``sqrt`` vs ``natural``).
A pair is two rows of the results index (hashtag-pretrained transfers) that agree on everything
but the axis: every pretraining setup column (:data:`experiments.findings_claims.SETUP`, minus
the axis and the columns tied to it, such as ``model`` for ``width_per_group``), the pretraining
seed, the transfer seed and every transfer setting
(:data:`experiments.results.TRANSFER_SETTINGS`). Its difference is
``metric(treatment) - metric(control)`` in points (percent). The scale claim's per-seed number is
instead the slope of the metric against ``log10(images)`` over the scales one seed ran (points
per 10x images); the vocabulary and width claims pair the largest against the smallest
vocabulary (by size) / width, at the largest data scale where both were run.

A seed's differences over several matched setups (e.g. the same comparison at two scales) are
averaged into one number (:func:`per_seed_differences`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from experiments.findings_claims import SEEDS, SETUP, Claim
from experiments.results import TRANSFER_SETTINGS, as_keys


def _match_keys(df: pd.DataFrame, claim: Claim) -> list[str]:
    drop = {claim.axis, *claim.tied}
    keys = [c for c in [*SETUP, *SEEDS, *TRANSFER_SETTINGS] if c not in drop and c in df.columns]
    return keys


def _pair_diffs(d: pd.DataFrame, claim: Claim, keys: list[str], metric: str) -> pd.DataFrame:
    """Rows: matched (setup, seed); columns: keys and ``diff`` (points)."""
    arms = d[d[claim.axis].isin([claim.treat, claim.control])]
    if arms.empty:
        return pd.DataFrame(columns=[*keys, "diff"])
    wide = arms.groupby([*keys, claim.axis], dropna=False)[metric].mean().unstack(claim.axis)
    if claim.treat not in wide.columns or claim.control not in wide.columns:
        return pd.DataFrame(columns=[*keys, "diff"])
    diff = (100 * (wide[claim.treat] - wide[claim.control])).dropna()
    return diff.rename("diff").reset_index()


def _extreme_diffs(d: pd.DataFrame, claim: Claim, keys: list[str], metric: str) -> pd.DataFrame:
    """Largest minus smallest ``order_by`` within each matched group, at the largest scale."""
    rows = []
    for key, g in d.groupby(keys, dropna=False, sort=False):
        sizes = pd.to_numeric(g[claim.order_by], errors="coerce")
        if sizes.isna().all() or sizes.max() <= sizes.min():
            continue
        top = g.loc[sizes == sizes.max(), metric].mean()
        bottom = g.loc[sizes == sizes.min(), metric].mean()
        rows.append({**dict(zip(keys, key)), "diff": 100 * (top - bottom)})
    out = pd.DataFrame(rows, columns=[*keys, "diff"])
    if out.empty or "scale" not in keys:
        return out
    scales = pd.to_numeric(out["scale"], errors="coerce")
    return out[scales == scales.max()]


def _slopes(d: pd.DataFrame, keys: list[str], metric: str) -> pd.DataFrame:
    """Per matched group (one seed, everything but the scale): slope vs log10(images)."""
    size = pd.to_numeric(d["images"], errors="coerce") if "images" in d else None
    if size is None or size.isna().all() or (size <= 0).any():
        size = pd.to_numeric(d["scale"], errors="coerce")
    d = d.assign(_x=np.log10(size.astype(float).where(size > 0)))
    rows = []
    for key, g in d.dropna(subset=["_x"]).groupby(keys, dropna=False, sort=False):
        if g["_x"].nunique() < 2:
            continue
        slope = np.polyfit(g["_x"].to_numpy(float), 100 * g[metric].to_numpy(float), 1)[0]
        rows.append({**dict(zip(keys, key)), "diff": float(slope)})
    return pd.DataFrame(rows, columns=[*keys, "diff"])


def baseline_differences(
    pretrained: pd.DataFrame, random: pd.DataFrame, metric: str = "top1"
) -> pd.Series:
    """Per seed: hashtag-pretrained top-1 at the largest scale (mean over its setups) minus the
    random-init top-1 of that seed, in points. The random rows are the strongest protocol
    present: batch-norm statistics re-estimated on the target, when such rows exist."""
    p = pretrained.assign(**{metric: pd.to_numeric(pretrained[metric], errors="coerce")})
    r = random.assign(**{metric: pd.to_numeric(random[metric], errors="coerce")})
    p, r = p.dropna(subset=[metric, "seed"]), r.dropna(subset=[metric, "seed"])
    if p.empty or r.empty:
        return pd.Series(dtype=float, name="diff")
    scales = pd.to_numeric(p["scale"], errors="coerce")
    if scales.notna().any():
        p = p[scales == scales.max()]
    recal = r["bn_recalibrate"].map(lambda v: str(v).lower() == "true")
    if recal.any():
        r = r[recal]
    seed = lambda d: d["seed"].astype(float).astype(int)  # noqa: E731
    diff = 100 * (p.groupby(seed(p))[metric].mean() - r.groupby(seed(r))[metric].mean())
    return diff.dropna().rename("diff").sort_index()


def per_seed_differences(df: pd.DataFrame, claim: Claim, metric: str = "top1") -> pd.Series:
    """The claim's number for every seed (seed -> points), averaged over matched setups."""
    d = df.assign(**{metric: pd.to_numeric(df[metric], errors="coerce")})
    d = d.dropna(subset=[metric, claim.axis])
    if d.empty:
        return pd.Series(dtype=float, name="diff")
    keys = _match_keys(d, claim)
    d = as_keys(d, keys)
    if claim.kind == "slope":
        diffs = _slopes(d, keys, metric)
    elif claim.kind == "extremes":
        diffs = _extreme_diffs(d, claim, keys, metric)
    else:
        diffs = _pair_diffs(d, claim, keys, metric)
    if diffs.empty:
        return pd.Series(dtype=float, name="diff")
    return diffs.groupby("seed", sort=True)["diff"].mean()
