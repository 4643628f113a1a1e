"""Linear probe: exactness against scikit-learn, separable data, L2 choice off the grid edge."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from datamodules.errors import UserInputError
from lightning_modules.linear_probe import (
    Standardizer,
    fit_softmax_regression,
    kfold_probe,
    linear_probe,
    select_l2,
    topk_accuracy,
)


def _blobs(n_per_class: int, num_classes: int, dim: int, spread: float, seed: int):
    """Gaussian classes around random unit-norm centres scaled by 1/spread."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(num_classes, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    y = np.repeat(np.arange(num_classes), n_per_class)
    x = centres[y] + spread * rng.normal(size=(len(y), dim))
    perm = rng.permutation(len(y))
    return x[perm].astype(np.float32), y[perm]


def test_fit_matches_sklearn_logistic_regression():
    x, y = _blobs(40, 4, 10, 0.8, seed=0)
    xs = Standardizer.fit(torch.as_tensor(x))(torch.as_tensor(x))
    l2 = 0.05
    ours = fit_softmax_regression(xs, torch.as_tensor(y), 4, l2, tol=1e-7)
    ref = LogisticRegression(C=1.0 / (l2 * len(y)), tol=1e-10, max_iter=5000).fit(xs.numpy(), y)
    p_ours = torch.softmax(ours.logits(xs), 1).numpy()
    p_ref = ref.predict_proba(xs.numpy())
    assert np.abs(p_ours - p_ref).max() < 2e-3


def test_vector_ops_on_one_thread_solve_the_same_problem_and_restore_threads():
    """L-BFGS's vector work on one thread (the default) reaches the same optimum as on all of
    torch's threads, and the caller's thread count is left as it was."""
    x, y = _blobs(50, 5, 64, 0.8, seed=3)
    xs = Standardizer.fit(torch.as_tensor(x))(torch.as_tensor(x))
    yt = torch.as_tensor(y)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        one = fit_softmax_regression(xs, yt, 5, 0.05, tol=1e-7)
        assert torch.get_num_threads() == 2
        many = fit_softmax_regression(xs, yt, 5, 0.05, tol=1e-7, vector_threads=None)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    p_one, p_many = torch.softmax(one.logits(xs), 1), torch.softmax(many.logits(xs), 1)
    assert float((p_one - p_many).abs().max()) < 1e-4


def test_separable_features_reach_full_accuracy():
    x, y = _blobs(60, 6, 16, 0.05, seed=1)
    res = linear_probe(x[:240], y[:240], x[240:], y[240:], 6, [1e-4, 1e-3, 1e-2, 1e-1], seed=0)
    assert res.top1 == 1.0
    assert res.top5 == 1.0
    assert res.num_train == 240 and res.num_eval == 120


def test_topk_accuracy_counts_top_k():
    logits = torch.tensor([[3.0, 2.0, 1.0], [1.0, 3.0, 2.0], [1.0, 2.0, 3.0]])
    y = torch.tensor([1, 1, 0])
    assert topk_accuracy(logits, y, 1) == pytest.approx(1 / 3)
    assert topk_accuracy(logits, y, 2) == pytest.approx(2 / 3)
    assert topk_accuracy(logits, y, 5) == 1.0  # k capped at the class count


def test_l2_grid_extends_until_the_choice_is_interior():
    # few noisy samples in many dimensions: the best strength is far above the given grid
    x, y = _blobs(12, 3, 60, 1.5, seed=2)
    choice = select_l2(x, y, 3, [1e-4, 1e-3], seed=0, max_extensions=6)
    assert choice.extensions, "the best was at the grid's top edge, so the grid must grow"
    assert choice.extensions[0] == pytest.approx(1e-2)
    assert not choice.at_edge
    assert choice.grid[0] < choice.l2 < choice.grid[-1]
    assert len(choice.heldout_top1) == len(choice.grid) == 2 + len(choice.extensions)


def test_l2_extension_is_capped_and_recorded():
    # perfectly separable: weaker is always better on held-out loss, so the low edge never ends
    x, y = _blobs(30, 3, 8, 0.01, seed=3)
    choice = select_l2(x, y, 3, [10.0, 100.0], seed=0, max_extensions=2)
    assert choice.extensions == pytest.approx([1.0, 0.1])
    assert choice.at_edge and choice.l2 == pytest.approx(0.1)


def test_kfold_reports_mean_and_spread():
    x, y = _blobs(25, 4, 12, 0.9, seed=4)
    res = kfold_probe(x, y, 4, [1e-3, 1e-2, 1e-1, 1.0], folds=3, seed=0)
    tops = np.array([f.top1 for f in res.folds])
    assert len(res.folds) == 3
    assert res.top1 == pytest.approx(tops.mean())
    assert res.top1_std == pytest.approx(tops.std())
    assert 0.4 < res.top1 <= res.top5 <= 1.0


def test_bad_inputs_raise_user_errors():
    x, y = _blobs(10, 2, 4, 0.5, seed=5)
    with pytest.raises(UserInputError, match="single class"):
        linear_probe(x, np.zeros_like(y), x, y, 2, [1.0])
    with pytest.raises(UserInputError, match="l2_grid"):
        select_l2(x, y, 2, [0.0, 1.0])
    with pytest.raises(UserInputError, match="transfer.folds"):
        kfold_probe(x, y, 2, [1.0], folds=11)
