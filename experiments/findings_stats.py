"""A claim measured: the mean of its per-seed differences over seeds, a t interval, the
verdict and the size against the paper's figure (:class:`Finding`, :func:`measure`).

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
points, :attr:`experiments.findings_claims.Claim.size`): *as the paper's* when the interval
overlaps that range, *smaller* when it lies entirely between 0 and the range, *larger* when
entirely beyond it, *opposite* when entirely on the other side of 0, ``—`` when the paper gives
no size or there is no interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from experiments.findings_claims import Claim
from experiments.findings_pairs import baseline_differences, per_seed_differences

LEVEL = 0.95
MISSING = "—"
AGREES, CONTRADICTS, INCONCLUSIVE = "agrees", "contradicts", "inconclusive"


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
