"""The two scaling-law forms of transfer accuracy against the number of pretraining images,
and their least-squares fits (one data set, or every bootstrap replicate at once).

Two forms, fitted on the per-run points (not on per-scale means, so seeds weigh in):

* log-linear on the accuracy: ``acc = alpha + beta * log10 N`` (the paper's observation);
  its prediction is capped at perfect accuracy (``top``): a straight line in log N crosses
  100% eventually, accuracy does not;
* saturating power law on the error: ``err = a * N^-b + c`` with a >= 0, 0 <= b <= 2 and
  0 <= c <= the smallest observed error, by least squares profiled over b: for a given b the
  best (a, c) is a two-variable box-constrained least-squares problem with a closed form, so a
  grid over b finds the global minimum (no starting point to get wrong), and every bootstrap
  replicate is fitted at once, vectorized.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar

from datamodules.errors import UserInputError

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
