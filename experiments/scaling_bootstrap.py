"""Both scaling-law fits (:mod:`experiments.scaling_fits`), their bootstrap confidence
intervals and the prediction at ``target_n`` images: :func:`fit_scaling`.

The prediction at ``target_n`` (3.5e9 images, the paper's largest set) is an *extrapolation*
whenever ``target_n`` exceeds the largest run, and is labelled so (``extrapolated``).

Confidence intervals resample whole runs. With the runs' seeds known (``seeds=``), a cluster
bootstrap over seeds: each replicate draws seeds with replacement and takes every run of a drawn
seed, at all its scales, so whatever a seed shares across scales (its nested data subset, its
initialization) stays together. Without seeds, each scale's runs are drawn with replacement at
that scale. Every replicate refits; the interval is a t interval on the bootstrap standard error,

    estimate ± t_{0.975, k-1} * sd(replicates) * sqrt(k / (k - 1)),

with ``k`` the number of resampling units (seeds; or the fewest runs at one scale, with
``sum(runs at a scale - 1)`` degrees of freedom). For a linear statistic (the log-linear slope)
this is the t interval of the per-seed slopes. For the power law's nonlinear, bounded
parameters and the extrapolations it is an approximation, clipped to the bounds. Fewer than two
resampling units gives no interval ("too few runs"), never a zero-width one; nor does a
quantity that every replicate puts on a bound (a log-linear prediction capped at 100%), or that
all seeds give exactly alike.

Why the first version's interval undercovered (an audit simulation gave 72% for a nominal 95%):
it took the 2.5 and 97.5 percentiles of the replicates, and with 3 seeds a bootstrap
distribution is a poor stand-in for the sampling distribution. (1) It is too narrow: the
bootstrap variance of a mean of k draws is ``(k-1)/k`` of the sample variance over k, a third
too small at k = 3. (2) Its quantiles are the normal ones, while a spread estimated from 3
seeds calls for Student's t with 2 degrees of freedom (4.30 instead of 1.96). (3) A replicate
of 3 draws repeats a run in 7 of 9 cases, so the distribution is lumpy (10 distinct replicates
of 3 seeds). (4) Resampling each scale's runs on its own breaks what a seed shares across
scales. Measured by the simulations of ``tests/test_scaling.py`` (4 scales over 1.5 decades x 3 seeds,
noise per run sd 1 point, per seed sd 0.5, per-seed tilt sd 0.5 points/decade; 200 simulated
sweeps): coverage of the true log-linear slope (300 replicates) by percentiles of per-scale run
resamples (the first version) 82.5%, by percentiles of a cluster bootstrap over seeds 73%, by
this interval 97.5%; of the true power-law exponent (200 replicates) 89% by the first
version's percentiles, 96.5% by this interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from experiments.scaling_fits import (
    B_BOUNDS,
    LogLinear,
    PowerLaw,
    fit_log_linear,
    fit_power_law,
    power_law_profile,
    weighted_log_linear,
)

TOO_FEW_RUNS = "too few runs"
LEVEL = 0.95


def resample_counts(
    n: np.ndarray, seeds: np.ndarray | None, bootstrap: int, rng: np.random.Generator
) -> tuple[np.ndarray, int, int]:
    """Bootstrap replicates as counts [bootstrap, runs] (how often each run is drawn), the
    number of resampling units ``k`` and the t interval's degrees of freedom.

    ``seeds`` given: a cluster bootstrap (seeds drawn with replacement, each with all its runs);
    ``k`` = number of seeds, df = k - 1. ``seeds`` None: each scale's runs drawn with
    replacement at that scale; ``k`` = fewest runs at a scale, df = sum(runs at a scale - 1).
    ``k`` < 2 means no interval can be had (the caller says "too few runs")."""
    n = np.asarray(n, dtype=float)
    counts = np.zeros((bootstrap, len(n)), dtype=np.int64)
    rows = np.arange(bootstrap)[:, None]
    if seeds is not None:
        units, unit_of_run = np.unique(np.asarray(seeds), return_inverse=True)
        k = len(units)
        if k < 2:
            return counts, k, 0
        drawn = np.zeros((bootstrap, k), dtype=np.int64)
        np.add.at(drawn, (rows, rng.integers(0, k, (bootstrap, k))), 1)
        return drawn[:, unit_of_run], k, k - 1
    groups = [np.flatnonzero(n == s) for s in np.unique(n)]
    k = min(len(g) for g in groups)
    if k < 2:
        return counts, k, 0
    for g in groups:
        np.add.at(counts, (rows, g[rng.integers(0, len(g), (bootstrap, len(g)))]), 1)
    return counts, k, sum(len(g) - 1 for g in groups)


def t_interval(
    estimate: float, replicates: np.ndarray, k: int, df: int, level: float = LEVEL
) -> tuple[float, float]:
    """``estimate ± t_{(1+level)/2, df} * sd(replicates) * sqrt(k / (k-1))`` (NaN replicates,
    i.e. replicates that could not be fitted, are left out)."""
    r = np.asarray(replicates, dtype=float)
    r = r[np.isfinite(r)]
    se = float(np.std(r, ddof=1)) * math.sqrt(k / (k - 1))
    half = float(stats.t.ppf(0.5 + level / 2, df)) * se
    return estimate - half, estimate + half


@dataclass
class ScalingFit:
    """Both fits, their bootstrap intervals and the prediction at ``target_n`` images."""

    n_points: int
    n_scales: int
    runs_per_scale: dict[float, int]
    power: PowerLaw | None
    loglin: LogLinear
    target_n: float
    acc_at_target_power: float | None
    acc_at_target_loglin: float
    top: float = 1.0  # perfect accuracy in the data's units (1.0 or 100)
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)  # name -> (lo, hi)
    bootstrap: int = 0
    resampling: str = ""  # "seeds" (cluster bootstrap) or "runs within each scale"
    units: int = 0  # resampling units: seeds, or the fewest runs at one scale
    ci_note: str = ""  # why there is no interval ("too few runs"), else ""
    dropped: int = 0  # replicates that could not be fitted (too few scales drawn)

    @property
    def extrapolated(self) -> bool:
        """The target lies beyond the largest run: the prediction is an extrapolation."""
        return self.target_n > max(self.runs_per_scale, default=0.0)

    @property
    def capped(self) -> bool:
        """The log-linear line passes perfect accuracy at the target (the prediction is top)."""
        return self.loglin.alpha + self.loglin.beta * math.log10(self.target_n) > self.top

    def summary(self, unit: str = "") -> dict:
        out = {
            "points": self.n_points,
            "scales": self.n_scales,
            "runs_per_scale": {str(k): v for k, v in self.runs_per_scale.items()},
            "bootstrap": self.bootstrap,
            "resampling": self.resampling,
            "resampling_units": self.units,
            "interval": f"{LEVEL:.0%} t interval on the bootstrap standard error",
            "loglin_alpha": self.loglin.alpha,
            "loglin_beta_per_decade": self.loglin.beta,
            "target_images": self.target_n,
            "extrapolated": self.extrapolated,
            "acc_at_target_loglin": self.acc_at_target_loglin,
            "loglin_capped_at_top": self.capped,
        }
        if self.power is not None:
            out.update(
                power_a=self.power.a,
                power_b=self.power.b,
                power_c=self.power.c,
                acc_at_target_power=self.acc_at_target_power,
            )
        out["ci95"] = {k: list(v) for k, v in self.ci.items()}
        if self.ci_note:
            out["ci_note"] = self.ci_note
        if self.dropped:
            out["bootstrap_dropped"] = self.dropped
        return out


def fit_scaling(
    n: np.ndarray,
    acc: np.ndarray,
    *,
    seeds: np.ndarray | None = None,
    target_n: float = 3.5e9,
    top: float = 1.0,
    bootstrap: int = 1000,
    seed: int = 0,
    power: bool = True,
) -> ScalingFit:
    """Fit accuracy vs images (``top`` = perfect accuracy: 1.0 for fractions, 100 for percent).

    ``seeds`` (one per run) makes the bootstrap resample seeds with all their runs; without it,
    runs are resampled within each scale. ``power=False`` skips the power law (faster)."""
    n, acc = np.asarray(n, dtype=float), np.asarray(acc, dtype=float)
    ok = np.isfinite(n) & np.isfinite(acc)
    n, acc = n[ok], acc[ok]
    seeds = None if seeds is None else np.asarray(seeds)[ok]
    scales, counts = np.unique(n, return_counts=True)
    loglin = fit_log_linear(n, acc, top=top)
    power_fit = fit_power_law(n, top - acc) if power and len(scales) >= 3 else None
    fit = ScalingFit(
        n_points=len(n),
        n_scales=len(scales),
        runs_per_scale={float(s): int(c) for s, c in zip(scales, counts)},
        power=power_fit,
        loglin=loglin,
        target_n=target_n,
        acc_at_target_power=None if power_fit is None else float(top - power_fit.err(target_n)),
        acc_at_target_loglin=float(loglin.acc(target_n)),
        top=top,
        bootstrap=bootstrap,
        resampling="seeds" if seeds is not None else "runs within each scale",
    )
    if bootstrap <= 0:
        return fit
    rng = np.random.default_rng(seed)
    w, k, df = resample_counts(n, seeds, bootstrap, rng)
    fit.units = k
    if k < 2:
        fit.ci_note = f"{TOO_FEW_RUNS} (need >= 2 {'seeds' if seeds is not None else 'per scale'})"
        return fit
    alpha, beta = weighted_log_linear(n, acc, w)
    replicates = {
        "beta": beta,
        "acc_at_target_loglin": np.minimum(alpha + beta * math.log10(target_n), top),
    }
    if power_fit is not None:
        a, b, c = power_law_profile(n, top - acc, w)
        replicates.update(b=b, c=c, acc_at_target_power=top - (a * target_n**-b + c))
    estimates = {
        "beta": loglin.beta,
        "acc_at_target_loglin": min(loglin.alpha + loglin.beta * math.log10(target_n), top),
    }
    if power_fit is not None:
        estimates.update(b=power_fit.b, c=power_fit.c, acc_at_target_power=fit.acc_at_target_power)
    fit.dropped = int(np.sum(~np.isfinite(beta)))
    if np.sum(np.isfinite(beta)) < 2:
        fit.ci_note = f"{TOO_FEW_RUNS} (no replicate spans 2 scales)"
        return fit
    clip = {"b": B_BOUNDS, "c": (0.0, top), "acc_at_target_loglin": (-math.inf, top)}
    clip["acc_at_target_power"] = (-math.inf, top)
    for key, est in estimates.items():
        lo, hi = t_interval(est, replicates[key], k, df)
        lo_b, hi_b = clip.get(key, (-math.inf, math.inf))
        lo, hi = max(lo, lo_b), min(hi, hi_b)
        if hi > lo:  # a bound that holds the whole interval (a capped line) gives none
            fit.ci[key] = (lo, hi)
    return fit
