"""Scaling-law fits of transfer accuracy against the number of pretraining images.

Two forms, fitted on the per-run points (not on per-scale means, so seeds weigh in):

* log-linear on the accuracy: ``acc = alpha + beta * log10 N`` (the paper's observation);
  its prediction is capped at perfect accuracy (``top``): a straight line in log N crosses
  100% eventually, accuracy does not;
* saturating power law on the error: ``err = a * N^-b + c`` with a >= 0, 0 <= b <= 2 and
  0 <= c <= the smallest observed error, by least squares profiled over b: for a given b the
  best (a, c) is a two-variable box-constrained least-squares problem with a closed form, so a
  grid over b finds the global minimum (no starting point to get wrong), and every bootstrap
  replicate is fitted at once, vectorized.

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
from scipy.optimize import minimize_scalar

from datamodules.errors import UserInputError

TOO_FEW_RUNS = "too few runs"
LEVEL = 0.95
B_BOUNDS = (0.0, 2.0)
B_GRID = np.linspace(*B_BOUNDS, 401)  # profile grid for the power-law exponent (step 0.005)


@dataclass
class PowerLaw:
    a: float
    b: float
    c: float

    def err(self, n: np.ndarray | float) -> np.ndarray | float:
        return self.a * np.power(np.asarray(n, dtype=float), -self.b) + self.c


@dataclass
class LogLinear:
    alpha: float
    beta: float  # accuracy gained per 10x images
    top: float = math.inf  # predictions are capped here (perfect accuracy)

    def acc(self, n: np.ndarray | float) -> np.ndarray | float:
        line = self.alpha + self.beta * np.log10(np.asarray(n, dtype=float))
        return np.minimum(line, self.top)


def _best_ac(
    s0: np.ndarray, sy: np.ndarray, syy: np.ndarray, sf, sff, sfy, c_max: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For fixed b: the (a, c) minimizing sum w (err - a f - c)^2 under a >= 0, 0 <= c <= c_max,
    from the weighted sums (any broadcastable shapes); returns (a, c, sse).

    A convex quadratic in two variables: the minimum is the unconstrained one when feasible,
    else on an edge of the box (a = 0, c = 0 or c = c_max), each solved in closed form."""

    def sse(a, c):
        return syy - 2 * a * sfy - 2 * c * sy + a * a * sff + 2 * a * c * sf + c * c * s0

    det = sff * s0 - sf * sf
    ok = det > 1e-12 * np.maximum(sff * s0, 1e-300)
    safe = np.where(ok, det, 1.0)
    a_u = (sfy * s0 - sf * sy) / safe
    c_u = (sff * sy - sf * sfy) / safe
    feasible = ok & (a_u >= 0) & (c_u >= 0) & (c_u <= c_max)
    sff_safe = np.where(sff > 0, sff, 1.0)
    candidates = [
        (np.where(feasible, a_u, 0.0), np.where(feasible, c_u, 0.0), feasible),
        (np.zeros_like(a_u), np.clip(sy / s0, 0.0, c_max), None),
        (np.maximum(sfy / sff_safe, 0.0), np.zeros_like(a_u), None),
        (np.maximum((sfy - c_max * sf) / sff_safe, 0.0), np.broadcast_to(c_max, a_u.shape), None),
    ]
    best_a, best_c, best = None, None, None
    for a_k, c_k, valid in candidates:
        e = sse(a_k, c_k)
        if valid is not None:
            e = np.where(valid, e, np.inf)
        if best is None:
            best_a, best_c, best = a_k, c_k, e
            continue
        better = e < best
        best_a, best_c = np.where(better, a_k, best_a), np.where(better, c_k, best_c)
        best = np.where(better, e, best)
    return best_a, best_c, best


def power_law_profile(
    n: np.ndarray, err: np.ndarray, weights: np.ndarray, grid: np.ndarray = B_GRID
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Least-squares ``err = a * N^-b + c`` for every row of ``weights`` ([B, runs]: how often
    each run counts), by profiling: for each b on ``grid`` the best (a, c) in closed form, then
    a parabola through the best grid point and its neighbours. Returns (a, b, c) arrays [B]
    (NaN where a row spans < 3 scales). Bounds: a >= 0, b in B_BOUNDS, 0 <= c <= the smallest
    error among the row's runs."""
    n, y = np.asarray(n, dtype=float), np.asarray(err, dtype=float)
    w = np.atleast_2d(np.asarray(weights, dtype=float))
    n0 = float(np.exp(np.mean(np.log(n))))  # work in x = N / n0, then a = a' * n0^b
    f = np.power((n / n0)[None, :], -grid[:, None])  # [G, R]
    s0, sy, syy = w.sum(1), w @ y, w @ (y * y)
    sf, sff, sfy = w @ f.T, w @ (f * f).T, w @ (f * y).T  # [B, G]
    c_max = np.maximum(np.where(w > 0, y[None, :], np.inf).min(1), 0.0)
    col = lambda v: v[:, None]  # noqa: E731
    a_g, c_g, sse = _best_ac(col(s0), col(sy), col(syy), sf, sff, sfy, col(c_max))
    i = np.argmin(sse, axis=1)
    rows = np.arange(len(w))
    j = np.clip(i, 1, len(grid) - 2)  # parabola through (j-1, j, j+1)
    e0, e1, e2 = sse[rows, j - 1], sse[rows, j], sse[rows, j + 1]
    h = grid[1] - grid[0]
    curv = e0 - 2 * e1 + e2
    shift = np.where(curv > 0, 0.5 * h * (e0 - e2) / np.where(curv > 0, curv, 1.0), 0.0)
    b = np.clip(grid[j] + np.clip(shift, -h, h), grid[0], grid[-1])
    b = np.where((i == 0) | (i == len(grid) - 1), grid[i], b)  # at a bound: the bound
    fb = np.power((n / n0)[None, :], -b[:, None])  # [B, R]
    a_, c, _ = _best_ac(s0, sy, syy, (w * fb).sum(1), (w * fb * fb).sum(1), (w * fb * y).sum(1),
                        c_max)  # fmt: skip
    spans = (np.where(w > 0, 1, 0) @ _scale_onehot(n)).astype(bool).sum(1) >= 3
    nan = np.full(len(w), np.nan)
    return (np.where(spans, a_ * n0**b, nan), np.where(spans, b, nan), np.where(spans, c, nan))


def _scale_onehot(n: np.ndarray) -> np.ndarray:
    """[runs, scales]: 1 where a run is at that scale."""
    return (n[:, None] == np.unique(n)[None, :]).astype(int)


def fit_power_law(n: np.ndarray, err: np.ndarray) -> PowerLaw:
    """Least-squares fit of ``err = a * N^-b + c``; needs at least 3 distinct N.

    The profile over b (:func:`power_law_profile`) finds the global minimum on a grid; a
    bounded scalar minimization of the profiled error then polishes b."""
    n, err = np.asarray(n, dtype=float), np.asarray(err, dtype=float)
    if len(np.unique(n)) < 3:
        raise UserInputError("a power-law fit needs runs at >= 3 data scales")
    if np.any(n <= 0):
        raise UserInputError("data scales must be positive image counts")
    ones = np.ones(len(n))
    _, (b0,), _ = power_law_profile(n, err, ones)
    n0 = float(np.exp(np.mean(np.log(n))))
    x = n / n0
    c_max = np.array(max(float(err.min()), 0.0))
    s0, sy, syy = ones.sum(), err.sum(), (err * err).sum()

    def profile(b: float) -> tuple[float, float, float]:
        fb = x**-b
        a_, c, e = _best_ac(s0, sy, syy, fb.sum(), (fb * fb).sum(), (fb * err).sum(), c_max)
        return float(a_), float(c), float(e)

    h = B_GRID[1] - B_GRID[0]
    lo, hi = max(B_BOUNDS[0], b0 - h), min(B_BOUNDS[1], b0 + h)
    res = minimize_scalar(lambda b: profile(b)[2], bounds=(lo, hi), method="bounded",
                          options={"xatol": 1e-10})  # fmt: skip
    b = float(res.x) if res.fun <= profile(b0)[2] else float(b0)
    a_, c, _ = profile(b)
    return PowerLaw(a=float(a_ * n0**b), b=b, c=c)


def fit_log_linear(n: np.ndarray, acc: np.ndarray, top: float = math.inf) -> LogLinear:
    n = np.asarray(n, dtype=float)
    if len(np.unique(n)) < 2:
        raise UserInputError("a log-linear fit needs runs at >= 2 data scales")
    beta, alpha = np.polyfit(np.log10(n), np.asarray(acc, dtype=float), 1)
    return LogLinear(alpha=float(alpha), beta=float(beta), top=top)


def weighted_log_linear(
    n: np.ndarray, acc: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(alpha, beta) of the least-squares line of acc on log10 N for every row of ``weights``
    ([B, runs]: how often each run is in a replicate); NaN where a row spans < 2 scales."""
    x = np.log10(np.asarray(n, dtype=float))
    y = np.asarray(acc, dtype=float)
    w = np.asarray(weights, dtype=float)
    total = w.sum(axis=-1)
    mx, my = (w @ x) / total, (w @ y) / total
    sxx = w @ (x * x) - total * mx * mx
    sxy = w @ (x * y) - total * mx * my
    ok = sxx > 1e-12 * np.maximum(1.0, total * mx * mx)
    beta = np.where(ok, sxy / np.where(ok, sxx, 1.0), np.nan)
    return my - beta * mx, beta


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


def plot_scaling(
    ax, n: np.ndarray, acc: np.ndarray, fit: ScalingFit, label: str = "", color=None
) -> dict[str, np.ndarray]:
    """Points (each run), the two fitted curves out to the target (dotted beyond the largest
    run: extrapolation), the target marked; returns the plotted arrays by name."""
    n, acc = np.asarray(n, dtype=float), np.asarray(acc, dtype=float)
    name = f"{label} " if label else ""
    line = ax.scatter(n, acc, s=18, color=color, label=f"{name}runs", zorder=3)
    color = color or line.get_facecolor()[0]
    grid = np.logspace(math.log10(n.min()), math.log10(max(fit.target_n, n.max())), 200)
    inside = grid <= n.max()
    plotted = {"runs_n": n, "runs_acc": acc, "grid": grid, "loglin": fit.loglin.acc(grid)}
    ax.plot(grid[inside], plotted["loglin"][inside], "--", color=color, lw=1,
            label=f"{name}log-linear")  # fmt: skip
    ax.plot(grid[~inside], plotted["loglin"][~inside], ":", color=color, lw=1)
    if fit.power is not None:
        plotted["power"] = fit.top - fit.power.err(grid)
        ax.plot(grid[inside], plotted["power"][inside], "-", color=color, lw=1.2,
                label=f"{name}power law")  # fmt: skip
        ax.plot(grid[~inside], plotted["power"][~inside], ":", color=color, lw=1.2)
        ax.scatter([fit.target_n], [fit.acc_at_target_power], marker="*", s=80, color=color,
                   label=f"{name}extrapolated to {fit.target_n:.2g} images"
                   if fit.extrapolated else None)  # fmt: skip
    ax.set_xscale("log")
    return plotted
