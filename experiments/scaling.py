"""Scaling-law fits of transfer accuracy against the number of pretraining images.

Two forms, fitted on the per-run points (not on per-scale means, so seeds weigh in):

* saturating power law on the error: ``err = a * N^-b + c`` (``scipy.optimize.curve_fit``,
  with ``N`` scaled by its geometric mean for conditioning, a >= 0, 0 <= b <= 2 and
  0 <= c <= the smallest observed error);
* log-linear on the accuracy: ``acc = alpha + beta * log10 N`` (the paper's observation).

Confidence intervals come from a bootstrap over seeds: each replicate resamples, for every
scale, that scale's runs with replacement, then refits. With one run per scale every replicate
is the same data, so the interval collapses to the point estimate: the report says ``n``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit

from datamodules.errors import UserInputError


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

    def acc(self, n: np.ndarray | float) -> np.ndarray | float:
        return self.alpha + self.beta * np.log10(np.asarray(n, dtype=float))


def fit_power_law(n: np.ndarray, err: np.ndarray) -> PowerLaw:
    """Least-squares fit of ``err = a * N^-b + c``; needs at least 3 distinct N."""
    n, err = np.asarray(n, dtype=float), np.asarray(err, dtype=float)
    if len(np.unique(n)) < 3:
        raise UserInputError("a power-law fit needs runs at >= 3 data scales")
    if np.any(n <= 0):
        raise UserInputError("data scales must be positive image counts")
    n0 = float(np.exp(np.mean(np.log(n))))  # fit in x = N / n0, then a = a' * n0^b
    x = n / n0
    c_max = max(float(err.min()), 1e-12)
    c0 = 0.5 * c_max
    span = max(float(err.max()) - c0, 1e-6)
    p0 = [span * float(x.min()) ** 0.3, 0.3, c0]  # inside the bounds below
    lower, upper = [0.0, 0.0, 0.0], [np.inf, 2.0, c_max]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OptimizeWarning)
        (a_, b, c), _ = curve_fit(
            lambda x, a, b, c: a * np.power(x, -b) + c,
            x,
            err,
            p0=p0,
            bounds=(lower, upper),
            maxfev=20000,
        )
    return PowerLaw(a=float(a_ * n0**b), b=float(b), c=float(c))


def fit_log_linear(n: np.ndarray, acc: np.ndarray) -> LogLinear:
    n = np.asarray(n, dtype=float)
    if len(np.unique(n)) < 2:
        raise UserInputError("a log-linear fit needs runs at >= 2 data scales")
    beta, alpha = np.polyfit(np.log10(n), np.asarray(acc, dtype=float), 1)
    return LogLinear(alpha=float(alpha), beta=float(beta))


@dataclass
class ScalingFit:
    """Both fits, their bootstrap intervals and the extrapolation to ``target_n`` images."""

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

    def summary(self, unit: str = "") -> dict:
        out = {
            "points": self.n_points,
            "scales": self.n_scales,
            "runs_per_scale": {str(k): v for k, v in self.runs_per_scale.items()},
            "bootstrap": self.bootstrap,
            "loglin_alpha": self.loglin.alpha,
            "loglin_beta_per_decade": self.loglin.beta,
            "target_images": self.target_n,
            "acc_at_target_loglin": self.acc_at_target_loglin,
        }
        if self.power is not None:
            out.update(
                power_a=self.power.a,
                power_b=self.power.b,
                power_c=self.power.c,
                acc_at_target_power=self.acc_at_target_power,
            )
        out["ci95"] = {k: list(v) for k, v in self.ci.items()}
        return out


def _fit_all(n: np.ndarray, acc: np.ndarray, top: float, target_n: float) -> dict[str, float]:
    loglin = fit_log_linear(n, acc)
    out = {"beta": loglin.beta, "acc_at_target_loglin": float(loglin.acc(target_n))}
    if len(np.unique(n)) >= 3:
        power = fit_power_law(n, top - acc)
        out.update(b=power.b, c=power.c, acc_at_target_power=float(top - power.err(target_n)))
    return out


def fit_scaling(
    n: np.ndarray,
    acc: np.ndarray,
    *,
    target_n: float = 3.5e9,
    top: float = 1.0,
    bootstrap: int = 1000,
    seed: int = 0,
) -> ScalingFit:
    """Fit accuracy vs images (``top`` = perfect accuracy: 1.0 for fractions, 100 for percent)."""
    n, acc = np.asarray(n, dtype=float), np.asarray(acc, dtype=float)
    ok = np.isfinite(n) & np.isfinite(acc)
    n, acc = n[ok], acc[ok]
    scales, counts = np.unique(n, return_counts=True)
    loglin = fit_log_linear(n, acc)
    power = fit_power_law(n, top - acc) if len(scales) >= 3 else None
    fit = ScalingFit(
        n_points=len(n),
        n_scales=len(scales),
        runs_per_scale={float(s): int(c) for s, c in zip(scales, counts)},
        power=power,
        loglin=loglin,
        target_n=target_n,
        acc_at_target_power=None if power is None else float(top - power.err(target_n)),
        acc_at_target_loglin=float(loglin.acc(target_n)),
        top=top,
        bootstrap=bootstrap,
    )
    if bootstrap > 0:
        rng = np.random.default_rng(seed)
        groups = [np.flatnonzero(n == s) for s in scales]
        draws: dict[str, list[float]] = {}
        for _ in range(bootstrap):
            idx = np.concatenate([rng.choice(g, size=len(g), replace=True) for g in groups])
            for key, value in _fit_all(n[idx], acc[idx], top, target_n).items():
                draws.setdefault(key, []).append(value)
        fit.ci = {
            k: (float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5)))
            for k, v in draws.items()
        }
    return fit


def plot_scaling(
    ax, n: np.ndarray, acc: np.ndarray, fit: ScalingFit, label: str = "", color=None
) -> None:
    """Points (each run), the two fitted curves out to the extrapolation target, and the target."""
    n, acc = np.asarray(n, dtype=float), np.asarray(acc, dtype=float)
    line = ax.scatter(
        n, acc, s=18, color=color, label=f"{label} runs" if label else "runs", zorder=3
    )
    color = color or line.get_facecolor()[0]
    grid = np.logspace(math.log10(n.min()), math.log10(max(fit.target_n, n.max())), 200)
    ax.plot(
        grid, fit.loglin.acc(grid), "--", color=color, lw=1, label=f"{label} log-linear".strip()
    )
    if fit.power is not None:
        ax.plot(
            grid,
            fit.top - fit.power.err(grid),
            "-",
            color=color,
            lw=1.2,
            label=f"{label} power law".strip(),
        )
        ax.scatter([fit.target_n], [fit.acc_at_target_power], marker="*", s=80, color=color)
    ax.set_xscale("log")
