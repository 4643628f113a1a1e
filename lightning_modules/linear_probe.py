"""Linear probe: multinomial logistic regression on frozen features, L2 chosen by inner CV.

The paper's feature-transfer protocol trains a linear classifier on the penultimate layer of a
frozen network. The classifier here is full-batch multinomial logistic regression fitted with
L-BFGS in torch (exact to the optimizer's tolerance, multi-threaded matmuls, warm starts along
the L2 path), on features standardized with the training part's mean and spread.

The objective for an L2 strength ``l2`` is ``mean cross-entropy + l2 / 2 * ||W||^2`` (bias not
penalized); in scikit-learn's terms ``C = 1 / (l2 * n_train)``.

The strength is chosen on held-out parts of the training data only (stratified inner folds, or
one stratified hold-out split when the training set is large), by held-out top-1 accuracy with
ties broken by held-out cross-entropy. When the best strength sits at an edge of the grid, the
grid grows by a decade on that side (up to ``max_extensions`` times) and the extension is
recorded, so a reported number never silently depends on a grid that was too narrow.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, train_test_split

from datamodules.errors import UserInputError
from lightning_modules.softmax_regression import (
    PATH_MAX_ITER,
    Standardizer,
    _as_tensor,
    fit_softmax_regression,
    topk_accuracy,
)

# Training sets up to this size get k-fold inner CV; larger ones one stratified hold-out split.
INNER_CV_MAX_TRAIN = 6000
INNER_FOLDS = 3
HOLDOUT_FRACTION = 0.2


def _splits(
    y: np.ndarray, seed: int, inner_folds: int | None, groups: np.ndarray | None = None
) -> list[tuple[np.ndarray, ...]]:
    """Stratified (fit, held-out) index pairs on the training data for choosing L2 (with
    ``groups``: a near-duplicate group stays on one side)."""
    n = len(y)
    counts = np.bincount(y)
    min_count = int(counts[counts > 0].min())
    folds = inner_folds
    if folds is None:
        folds = INNER_FOLDS if n <= INNER_CV_MAX_TRAIN else 1
    folds = min(folds, max(min_count, 1))
    idx = np.arange(n)
    # one hold-out split with groups: the first fold of round(1 / HOLDOUT_FRACTION)
    group_folds = folds if folds >= 2 else round(1 / HOLDOUT_FRACTION)
    if groups is not None and len(np.unique(groups)) >= group_folds and min_count >= group_folds:
        sgkf = StratifiedGroupKFold(n_splits=group_folds, shuffle=True, random_state=seed)
        splits = list(sgkf.split(idx, y, groups))
        return splits if folds >= 2 else splits[:1]
    if folds >= 2:
        skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        return list(skf.split(idx, y))
    stratify = y if min_count >= 2 else None
    fit_idx, held_idx = train_test_split(
        idx, test_size=HOLDOUT_FRACTION, random_state=seed, stratify=stratify
    )
    return [(fit_idx, held_idx)]


@dataclass
class L2Choice:
    """The chosen strength and the evidence: held-out scores for every strength tried."""

    l2: float
    grid: list[float]  # every strength tried, ascending (the configured grid plus extensions)
    heldout_top1: list[float]  # mean over inner splits, aligned with grid
    heldout_loss: list[float]
    inner_splits: int
    extensions: list[float] = field(default_factory=list)  # strengths added beyond the grid
    at_edge: bool = False  # still at an edge after the allowed extensions


def _score_path(
    x: torch.Tensor,
    y: torch.Tensor,
    num_classes: int,
    grid: list[float],
    splits: list[tuple[np.ndarray, ...]],
) -> dict[float, tuple[float, float]]:
    """Held-out (top-1, cross-entropy) per strength, averaged over splits; warm-started path."""
    sums = {l2: [0.0, 0.0] for l2 in grid}
    for fit_idx, held_idx in splits:
        fit_idx_t, held_idx_t = torch.as_tensor(fit_idx), torch.as_tensor(held_idx)
        scaler = Standardizer.fit(x[fit_idx_t])
        xf, xh = scaler(x[fit_idx_t]), scaler(x[held_idx_t])
        yf, yh = y[fit_idx_t], y[held_idx_t]
        model = None
        for l2 in sorted(grid, reverse=True):  # strong -> weak: each solution warm-starts the next
            model = fit_softmax_regression(
                xf, yf, num_classes, l2, init=model, max_iter=PATH_MAX_ITER
            )
            logits = model.logits(xh)
            sums[l2][0] += topk_accuracy(logits, yh, 1)
            sums[l2][1] += float(F.cross_entropy(logits, yh))
    return {l2: (acc / len(splits), loss / len(splits)) for l2, (acc, loss) in sums.items()}


def select_l2(
    x,
    y,
    num_classes: int,
    grid: list[float],
    *,
    seed: int = 0,
    inner_folds: int | None = None,
    max_extensions: int = 3,
    groups: np.ndarray | None = None,
) -> L2Choice:
    """Choose L2 on held-out parts of (x, y); extend the grid by a decade while the best is at
    an edge (at most ``max_extensions`` decades in all)."""
    if not grid or any(not (v > 0 and math.isfinite(v)) for v in grid):
        raise UserInputError(
            f"transfer.l2_grid must be a non-empty list of positive numbers, got {list(grid)}"
        )
    x = _as_tensor(x, torch.float32)
    y_np = np.asarray(y, dtype=np.int64)
    y_t = torch.as_tensor(y_np)
    splits = _splits(y_np, seed, inner_folds, groups)
    scores = _score_path(x, y_t, num_classes, sorted(set(grid)), splits)
    extensions: list[float] = []

    def best() -> float:
        # highest held-out top-1; ties -> lower held-out loss
        return min(scores, key=lambda l2: (-round(scores[l2][0], 9), scores[l2][1]))

    while True:
        choice, ordered = best(), sorted(scores)
        at_low, at_high = choice == ordered[0], choice == ordered[-1]
        if not (at_low or at_high) or len(extensions) >= max_extensions:
            break
        new = ordered[0] / 10 if at_low else ordered[-1] * 10
        extensions.append(new)
        scores.update(_score_path(x, y_t, num_classes, [new], splits))
    ordered = sorted(scores)
    return L2Choice(
        l2=choice,
        grid=ordered,
        heldout_top1=[scores[v][0] for v in ordered],
        heldout_loss=[scores[v][1] for v in ordered],
        inner_splits=len(splits),
        extensions=extensions,
        at_edge=choice in (ordered[0], ordered[-1]),
    )


@dataclass
class ProbeResult:
    top1: float
    top5: float
    l2: L2Choice
    num_train: int
    num_eval: int

    def to_dict(self) -> dict:
        return asdict(self)


def _check_labels(y: np.ndarray, num_classes: int, what: str) -> None:
    if len(y) == 0:
        raise UserInputError(f"linear probe: the {what} split is empty")
    if y.min() < 0 or y.max() >= num_classes:
        raise UserInputError(
            f"linear probe: {what} labels must lie in [0, {num_classes}), got [{y.min()}, {y.max()}]"
        )


def linear_probe(
    train_x,
    train_y,
    eval_x,
    eval_y,
    num_classes: int,
    grid: list[float],
    *,
    seed: int = 0,
    inner_folds: int | None = None,
    max_extensions: int = 3,
    groups: np.ndarray | None = None,
) -> ProbeResult:
    """Choose L2 on the training features, refit on all of them, report top-1/5 on eval.
    ``groups`` (near-duplicate group of each training image) keeps copies on one side of
    every inner split."""
    train_y = np.asarray(train_y, dtype=np.int64)
    eval_y = np.asarray(eval_y, dtype=np.int64)
    _check_labels(train_y, num_classes, "train")
    _check_labels(eval_y, num_classes, "eval")
    if len(np.unique(train_y)) < 2:
        raise UserInputError("linear probe: the train split has a single class; need at least 2")
    choice = select_l2(
        train_x,
        train_y,
        num_classes,
        grid,
        seed=seed,
        inner_folds=inner_folds,
        max_extensions=max_extensions,
        groups=groups,
    )
    xt = _as_tensor(train_x, torch.float32)
    xe = _as_tensor(eval_x, torch.float32)
    scaler = Standardizer.fit(xt)
    model = fit_softmax_regression(scaler(xt), torch.as_tensor(train_y), num_classes, choice.l2)
    logits = model.logits(scaler(xe))
    ye = torch.as_tensor(eval_y)
    return ProbeResult(
        top1=topk_accuracy(logits, ye, 1),
        top5=topk_accuracy(logits, ye, 5),
        l2=choice,
        num_train=len(train_y),
        num_eval=len(eval_y),
    )


@dataclass
class KFoldResult:
    top1: float  # mean over outer folds
    top5: float
    top1_std: float  # spread (population std) over outer folds
    top5_std: float
    folds: list[ProbeResult]

    def to_dict(self) -> dict:
        return asdict(self)


def outer_folds(
    y: np.ndarray, num_classes: int, folds: int, *, seed: int = 0, groups: np.ndarray | None = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, eval) index pairs of a stratified k-fold over pooled data. With ``groups`` (one id
    per image; near-duplicate copies share one) a group never straddles two folds
    (scikit-learn's StratifiedGroupKFold), so no image is scored against a copy of itself."""
    y = np.asarray(y, dtype=np.int64)
    counts = np.bincount(y, minlength=num_classes)
    present = counts[counts > 0]
    if len(present) < 2:
        raise UserInputError("linear probe: the target has a single class; need at least 2")
    if folds < 2 or present.min() < folds:
        raise UserInputError(
            f"transfer.folds={folds}: every class needs at least that many images "
            f"(smallest class has {int(present.min())}); lower transfer.folds"
        )
    idx = np.arange(len(y))
    if groups is None:
        skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        return list(skf.split(idx, y))
    groups = np.asarray(groups)
    if groups.shape != y.shape:
        raise ValueError(f"groups has shape {groups.shape}, labels {y.shape}")
    sgkf = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    return list(sgkf.split(idx, y, groups))


def summarize_folds(results: list[ProbeResult]) -> KFoldResult:
    top1 = np.array([r.top1 for r in results])
    top5 = np.array([r.top5 for r in results])
    return KFoldResult(
        top1=float(top1.mean()),
        top5=float(top5.mean()),
        top1_std=float(top1.std()),
        top5_std=float(top5.std()),
        folds=results,
    )


def kfold_probe(
    x,
    y,
    num_classes: int,
    grid: list[float],
    folds: int,
    *,
    seed: int = 0,
    max_extensions: int = 3,
    groups: np.ndarray | None = None,
) -> KFoldResult:
    """Stratified (group) k-fold over pooled data: per fold, L2 by inner CV on its training
    part. ``groups``: see :func:`outer_folds`."""
    y = np.asarray(y, dtype=np.int64)
    xt = _as_tensor(x, torch.float32)
    splits = outer_folds(y, num_classes, folds, seed=seed, groups=groups)
    kw = {"seed": seed, "max_extensions": max_extensions, "groups": groups}
    return summarize_folds(
        [probe_fold(xt, y, tr, ev, num_classes, grid, **kw) for tr, ev in splits]
    )


def probe_fold(
    x: torch.Tensor,
    y: np.ndarray,
    train_idx: np.ndarray,
    eval_idx: np.ndarray,
    num_classes: int,
    grid: list[float],
    *,
    seed: int = 0,
    max_extensions: int = 3,
    groups: np.ndarray | None = None,
) -> ProbeResult:
    """:func:`linear_probe` on one outer fold of pooled rows: trained on ``train_idx``, scored
    on ``eval_idx``; ``groups`` (one per pooled row) go along with the training rows."""
    return linear_probe(
        x[torch.as_tensor(train_idx)],
        y[train_idx],
        x[torch.as_tensor(eval_idx)],
        y[eval_idx],
        num_classes,
        grid,
        seed=seed,
        max_extensions=max_extensions,
        groups=None if groups is None else np.asarray(groups)[train_idx],
    )
