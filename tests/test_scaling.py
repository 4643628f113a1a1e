"""Scaling-law fits recover the parameters that generated their points."""

from __future__ import annotations

import numpy as np
import pytest

from datamodules.errors import UserInputError
from experiments.scaling import fit_log_linear, fit_power_law, fit_scaling

N = np.array([1e6, 3e6, 1e7, 3e7, 1e8, 3.5e8, 1e9])
A, B, C = 5.0, 0.25, 0.12


def test_power_law_recovers_noise_free_parameters():
    fit = fit_power_law(N, A * N**-B + C)
    assert fit.a == pytest.approx(A, rel=1e-4)
    assert fit.b == pytest.approx(B, rel=1e-4)
    assert fit.c == pytest.approx(C, abs=1e-5)


def test_power_law_recovers_parameters_under_small_noise():
    rng = np.random.default_rng(0)
    n = np.repeat(N, 3)  # three seeds per scale
    err = A * n**-B + C + rng.normal(0, 0.002, n.size)
    fit = fit_power_law(n, err)
    assert fit.b == pytest.approx(B, abs=0.03)
    assert fit.c == pytest.approx(C, abs=0.01)
    # the curve, not only the parameters: within the noise over the fitted range
    assert np.abs(fit.err(N) - (A * N**-B + C)).max() < 0.003


def test_log_linear_recovers_slope_and_extrapolates():
    acc = 0.4 + 0.05 * np.log10(N)
    fit = fit_log_linear(N, acc)
    assert fit.beta == pytest.approx(0.05, abs=1e-9)
    assert fit.alpha == pytest.approx(0.4, abs=1e-9)
    s = fit_scaling(N, acc, target_n=3.5e9, bootstrap=0)
    assert s.acc_at_target_loglin == pytest.approx(0.4 + 0.05 * np.log10(3.5e9), abs=1e-9)


def test_bootstrap_interval_covers_truth_and_extrapolation():
    rng = np.random.default_rng(1)
    n = np.repeat(N, 4)
    acc = 1 - (A * n**-B + C) + rng.normal(0, 0.002, n.size)
    s = fit_scaling(n, acc, target_n=3.5e9, bootstrap=200, seed=0)
    true_at_target = 1 - (A * 3.5e9**-B + C)
    lo, hi = s.ci["acc_at_target_power"]
    assert lo <= s.acc_at_target_power <= hi
    assert abs(s.acc_at_target_power - true_at_target) < 0.01
    # a 95% interval from 4 seeds per scale need not cover the truth on every draw: check that
    # it is a real interval around the estimate, and the estimate is near the truth
    assert s.ci["b"][0] < s.power.b < s.ci["b"][1]
    assert s.power.b == pytest.approx(B, abs=0.03)
    assert s.runs_per_scale == {float(x): 4 for x in N}


def test_one_run_per_scale_collapses_the_interval():
    acc = 0.4 + 0.05 * np.log10(N)
    s = fit_scaling(N, acc, bootstrap=20)
    lo, hi = s.ci["beta"]
    assert lo == pytest.approx(hi) == pytest.approx(0.05)


def test_too_few_scales_are_refused():
    with pytest.raises(UserInputError, match=">= 3 data scales"):
        fit_power_law(np.array([1e6, 1e7, 1e6]), np.array([0.5, 0.4, 0.5]))
    s = fit_scaling(np.array([1e6, 1e7]), np.array([0.5, 0.6]), bootstrap=0)
    assert s.power is None and s.loglin.beta == pytest.approx(0.1)
