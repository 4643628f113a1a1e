"""The findings table: every claim measured on the results index, one row per claim and
evaluation setting (target, split, protocol, features, ...)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from datamodules.errors import UserInputError
from experiments.findings_claims import CLAIMS
from experiments.findings_stats import MISSING, Finding, measure
from experiments.results import TRANSFER_SETTINGS, as_keys, in_sweep


def _sweeps(rows: pd.DataFrame) -> str:
    """The sweeps that planned the rows, plus a note when some rows came from no sweep."""
    names: set[str] = set()
    outside = False
    for value in rows.get("sweeps", pd.Series(dtype=object)).fillna(""):
        parts = [n for n in str(value).split(",") if n]
        names.update(parts)
        outside = outside or not parts
    return ",".join([*sorted(names), *(["(runs outside a sweep)"] if outside else [])])


def _evaluation(ev: pd.Series) -> str:
    whole = {k: int(v) for k, v in ev.items() if isinstance(v, float) and v.is_integer()}
    parts = [
        f"{k}={whole.get(k, v)}" for k, v in ev.items() if v not in ("", None) and not pd.isna(v)
    ]
    return " ".join(parts)


def findings_table(
    df: pd.DataFrame, metric: str = "top1", sweeps: dict[str, str] | None = None
) -> pd.DataFrame:
    """One row per claim and evaluation setting (target, split, protocol, features, ...): n,
    mean difference, 95% CI, verdict, size against the paper, the paper's figure and the sweeps
    whose runs were paired. ``sweeps`` (claim key -> sweep name) restricts a claim to the runs
    that sweep planned; other claims use every run."""
    sweeps = dict(sweeps or {})
    unknown = set(sweeps) - {c.key for c in CLAIMS}
    if unknown:
        raise UserInputError(
            f"findings_sweeps: unknown claims {sorted(unknown)}; "
            f"claims: {', '.join(c.key for c in CLAIMS)}"
        )
    init = df["init"].fillna("hashtag") if "init" in df else pd.Series("hashtag", index=df.index)
    pretrained = df[init == "hashtag"].dropna(subset=[metric])
    settings = [c for c in TRANSFER_SETTINGS if c in pretrained.columns]
    keyed = as_keys(pretrained, settings)
    random = as_keys(df[init == "random"].dropna(subset=[metric]), settings)
    evals = keyed[settings].drop_duplicates() if settings else pd.DataFrame([{}])
    rows = []
    for claim in CLAIMS:
        found = False
        for _, ev in evals.iterrows():
            mask = np.ones(len(keyed), dtype=bool)
            for k in settings:
                mask &= (keyed[k] == ev[k]).to_numpy()
            if claim.key in sweeps:
                mask &= in_sweep(keyed, sweeps[claim.key]).to_numpy()
            sub = keyed[mask]
            base = None
            if claim.kind == "baseline":  # same probe, the random net's BN setting its own
                base_mask = np.ones(len(random), dtype=bool)
                for k in (k for k in settings if k != "bn_recalibrate"):
                    base_mask &= (random[k] == ev[k]).to_numpy()
                if claim.key in sweeps:
                    base_mask &= in_sweep(random, sweeps[claim.key]).to_numpy()
                base = random[base_mask]
            f = measure(sub, claim, metric, random=base)
            if f.n == 0:
                continue
            found = True
            used = sub if claim.kind == "baseline" else sub[sub[claim.axis].notna()]
            if base is not None:
                used = pd.concat([used, base])
            rows.append(_row(f, _evaluation(ev), _sweeps(used)))
        if not found:
            rows.append(_row(Finding(claim, n=0), MISSING, MISSING))
    return pd.DataFrame(rows, columns=COLUMNS)


COLUMNS = [
    "claim",
    "comparison",
    "n",
    "mean_diff",
    "ci_lo",
    "ci_hi",
    "verdict",
    "size_vs_paper",
    "paper",
    "evaluated_on",
    "sweeps",
]


def _row(f: Finding, evaluated_on: str, sweeps: str) -> dict:
    return {
        "claim": f.claim.claim,
        "comparison": f.claim.comparison() if f.n else f"{f.claim.comparison()}: no matched runs",
        "n": f.n,
        "mean_diff": f.mean,
        "ci_lo": f.lo,
        "ci_hi": f.hi,
        "verdict": f.verdict,
        "size_vs_paper": f.size_vs_paper,
        "paper": f.claim.paper,
        "evaluated_on": evaluated_on,
        "sweeps": sweeps,
    }
