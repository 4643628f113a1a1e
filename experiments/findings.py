"""The paper's claims, each tested on this project's runs with paired per-seed differences.

**Pairs.** Every claim names an axis and two arms (e.g. ``sampling``: ``sqrt`` vs ``natural``).
A pair is two rows of the results index (hashtag-pretrained transfers) that agree on everything
but the axis: every pretraining setup column (:data:`SETUP`, minus the axis and the columns tied
to it, such as ``model`` for ``width_per_group``), the pretraining seed, the transfer seed and
every transfer setting (:data:`experiments.results.TRANSFER_SETTINGS`). Its difference is
``metric(treatment) - metric(control)`` in points (percent). The scale claim's per-seed number is
instead the slope of the metric against ``log10(images)`` over the scales one seed ran (points
per 10x images); the vocabulary and width claims pair the largest against the smallest
vocabulary (by size) / width, at the largest data scale where both were run.

**Per seed, then over seeds.** A seed's differences over several matched setups (e.g. the same
comparison at two scales) are averaged into one number, so the seed is the unit and ``n`` is the
number of seeds with a pair. Over those ``n`` numbers: the mean, and a 95% t interval,
``mean ± t_{0.975, n-1} * sd / sqrt(n)`` (``scipy.stats.t``, sample sd); ``n = 1`` has no
interval.

**Verdict** (direction): *inconclusive* when ``n < 3`` or the interval contains 0
(``lo <= 0 <= hi``); *agrees* when the whole interval lies on the paper's side of 0 (``lo > 0``
for a claimed gain, ``hi < 0`` for a claimed cost); *contradicts* when the whole interval lies
on the other side. A claim without a single pair is *inconclusive* with ``n = 0``.

**Size** does not change the verdict: the mini runs pretrain on thousands of images, not
billions, and the paper's sizes are not expected to carry over; a verdict is about the sign the
runs can resolve. The size is judged in its own column against the paper's figure (a range in
points, :attr:`Claim.size`): *as the paper's* when the interval overlaps that range, *smaller*
when it lies entirely between 0 and the range, *larger* when entirely beyond it, *opposite*
when entirely on the other side of 0, ``—`` when the paper gives no size or there is no interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from datamodules.axes import COLUMNS as AXIS_COLUMNS
from datamodules.errors import UserInputError
from experiments.results import TRANSFER_SETTINGS, as_keys, in_sweep

# Setup columns that identify a pretraining recipe: the paper's axes (datamodules.axes) but the
# seed (seeds are matched separately) and images (the measured size of the scale axis), plus the
# pretraining budget.
SETUP = [*(c for c in AXIS_COLUMNS if c not in ("images", "seed")), "images_seen"]
SEEDS = ["seed", "transfer_seed"]
LEVEL = 0.95
MISSING = "—"
AGREES, CONTRADICTS, INCONCLUSIVE = "agrees", "contradicts", "inconclusive"


@dataclass(frozen=True)
class Claim:
    """One claim: how to pair runs, which way the paper says it goes, and how far.

    ``kind``: ``pair`` (``treat`` vs ``control`` values of ``axis``), ``extremes`` (largest vs
    smallest ``order_by`` at the largest scale), ``slope`` (per-seed slope vs log10 images) or
    ``baseline`` (hashtag pretraining at the largest scale vs the random-init baseline of the
    same seed and probe, batch-norm statistics re-estimated where such runs exist).
    ``direction``: +1 the paper reports a gain (treatment above control / accuracy rising),
    -1 a cost. ``size``: the paper's figure as a (low, high) range in points, signed, or None."""

    key: str
    claim: str
    paper: str
    axis: str
    kind: str = "pair"
    treat: object = None
    control: object = None
    tied: tuple[str, ...] = ()  # setup columns that change with the axis
    order_by: str = ""
    direction: int = 1
    size: tuple[float, float] | None = None

    def comparison(self) -> str:
        if self.kind == "slope":
            return "slope of top-1 vs log10(images), points per 10x images, per seed"
        if self.kind == "extremes":
            return f"largest vs smallest {self.order_by}, at the largest scale run"
        if self.kind == "baseline":
            return "hashtag-pretrained (largest scale) − random init (BN re-estimated), same probe"
        return f"{self.axis} {self.treat} − {self.control}"


CLAIMS = [
    Claim(
        "baseline",
        "hashtag pretraining beats the strongest random-init baseline",
        "the paper's premise (it compares with ImageNet pretraining, not random init); "
        "this project's bar at mini scale: +10 points",
        axis="init",
        kind="baseline",
    ),
    Claim(
        "scale",
        "transfer accuracy grows log-linearly with pretraining images",
        "roughly linear in log(images), a few million to 3.5B images; slope not given",
        axis="scale",
        kind="slope",
        tied=("images_seen",),  # the budget may follow the dataset size
    ),
    Claim(
        "vocab",
        "a bigger hashtag vocabulary helps at scale",
        "17k > 1.5k hashtags at the largest scales; size not given",
        axis="vocab",
        kind="extremes",
        tied=("vocab_size",),
        order_by="vocab_size",
    ),
    Claim(
        "sampling_sqrt",
        "square-root sampling beats natural",
        "+5 to +6 points (ImageNet transfer)",
        axis="sampling",
        treat="sqrt",
        control="natural",
        size=(5.0, 6.0),
    ),
    Claim(
        "sampling_uniform",
        "uniform sampling beats natural",
        "+5 to +6 points (ImageNet transfer)",
        axis="sampling",
        treat="uniform",
        control="natural",
        size=(5.0, 6.0),
    ),
    Claim(
        "noise_10",
        "10% label noise costs little",
        "less than 1 point lost (range used: 0 to −1)",
        axis="label_noise",
        treat=0.1,
        control=0.0,
        direction=-1,
        size=(-1.0, 0.0),
    ),
    Claim(
        "noise_25",
        "25% label noise costs about 2 points",
        "about −2 points (range used: −3 to −1)",
        axis="label_noise",
        treat=0.25,
        control=0.0,
        direction=-1,
        size=(-3.0, -1.0),
    ),
    Claim(
        "noise_50",
        "50% label noise costs more",
        "not in the paper's verified sources; direction assumed (a cost)",
        axis="label_noise",
        treat=0.5,
        control=0.0,
        direction=-1,
    ),
    Claim(
        "width",
        "a wider model helps at scale",
        "32x16d > 32x8d > 32x4d, more so with more data; size not given",
        axis="width_per_group",
        kind="extremes",
        tied=("model",),
        order_by="width_per_group",
    ),
    Claim(
        "loss",
        "multi-label softmax beats per-hashtag sigmoid",
        "softmax better; size not given",
        axis="loss",
        treat="softmax",
        control="sigmoid",
    ),
]


# ---------------------------------------------------------------------------------------------
# pairs


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


# ---------------------------------------------------------------------------------------------
# interval and verdict


@dataclass
class Finding:
    claim: Claim
    n: int
    mean: float = math.nan
    lo: float = math.nan
    hi: float = math.nan
    setups: int = 0  # matched setups per seed (most of any seed)

    @property
    def verdict(self) -> str:
        if self.n < 3 or not (math.isfinite(self.lo) and math.isfinite(self.hi)):
            return INCONCLUSIVE
        if self.lo <= 0 <= self.hi:
            return INCONCLUSIVE
        side = 1 if self.lo > 0 else -1
        return AGREES if side == self.claim.direction else CONTRADICTS

    @property
    def size_vs_paper(self) -> str:
        if self.claim.size is None or not math.isfinite(self.lo):
            return MISSING
        p_lo, p_hi = sorted(self.claim.size)
        if self.hi >= p_lo and self.lo <= p_hi:
            return "as the paper's"
        sign = self.claim.direction
        if (self.hi < 0 and sign > 0) or (self.lo > 0 and sign < 0):
            return "opposite"
        beyond = self.lo > p_hi if sign > 0 else self.hi < p_lo
        return "larger" if beyond else "smaller"


def t_interval(values: np.ndarray, level: float = LEVEL) -> tuple[float, float, float]:
    """(mean, lo, hi): ``mean ± t_{(1+level)/2, n-1} * sd / sqrt(n)``; NaN bounds when n < 2."""
    v = np.asarray(values, dtype=float)
    if len(v) == 0:
        return math.nan, math.nan, math.nan
    mean = float(v.mean())
    if len(v) < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + level / 2, len(v) - 1)) * float(v.std(ddof=1)) / len(v) ** 0.5
    return mean, mean - half, mean + half


def measure(
    df: pd.DataFrame, claim: Claim, metric: str = "top1", random: pd.DataFrame | None = None
) -> Finding:
    if claim.kind == "baseline":
        empty = df.iloc[:0]
        per_seed = baseline_differences(df, empty if random is None else random, metric)
    else:
        per_seed = per_seed_differences(df, claim, metric)
    mean, lo, hi = t_interval(per_seed.to_numpy())
    return Finding(claim, n=len(per_seed), mean=mean, lo=lo, hi=hi)


# ---------------------------------------------------------------------------------------------
# the table


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
    parts = [f"{k}={v}" for k, v in ev.items() if v not in ("", None) and not pd.isna(v)]
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
