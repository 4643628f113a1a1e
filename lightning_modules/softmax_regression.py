"""Full-batch multinomial logistic regression on the CPU: the linear probe's solver.

``fit_softmax_regression`` minimizes ``mean cross-entropy + l2 / 2 * ||W||^2`` (bias not
penalized) with L-BFGS in torch, warm-startable along an L2 path; ``Standardizer`` maps features
with the training part's mean and spread; ``topk_accuracy`` scores logits. Choosing the strength
and the folds is ``lightning_modules.linear_probe``'s.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

# L-BFGS iterations: along the selection path each fit warm-starts from the previous strength's
# solution, so fewer suffice there; the final refit gets more. Weakly regularized fits on
# (nearly) separable features never meet the gradient tolerance and stop at these caps.
PATH_MAX_ITER = 100
FINAL_MAX_ITER = 300


@dataclass
class Standardizer:
    """Per-feature affine map fitted on training features: (x - mean) / std (std floor 1e-6)."""

    mean: torch.Tensor
    std: torch.Tensor

    @classmethod
    def fit(cls, x: torch.Tensor) -> Standardizer:
        mean = x.mean(0)
        std = x.std(0, unbiased=False)
        std = torch.where(std > 1e-6, std, torch.ones_like(std))  # constant features stay 0
        return cls(mean, std)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


@dataclass
class SoftmaxRegression:
    """A fitted linear classifier: logits = x @ weight + bias."""

    weight: torch.Tensor  # [D, C]
    bias: torch.Tensor  # [C]
    iterations: int = 0

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight + self.bias


@contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """torch's intra-op thread count set to ``n`` inside the block, restored after it."""
    before = torch.get_num_threads()
    if n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if n != before:
            torch.set_num_threads(before)


def _as_tensor(x, dtype) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x, dtype=dtype)


def fit_softmax_regression(
    x: torch.Tensor,
    y: torch.Tensor,
    num_classes: int,
    l2: float,
    *,
    init: SoftmaxRegression | None = None,
    max_iter: int = FINAL_MAX_ITER,
    tol: float = 1e-5,
    vector_threads: int | None = 1,
) -> SoftmaxRegression:
    """Minimize mean cross-entropy + l2/2 ||W||^2 with full-batch L-BFGS (strong Wolfe search).

    ``init`` warm-starts from another solution (used along the L2 path, strong to weak). The
    loss and its gradient are written out (softmax minus one-hot) rather than autograd's: the
    weight gradient is ``(P - Y)^T X`` transposed, a GEMM layout about 10x faster on the CPU
    than autograd's ``X^T (P - Y)`` for a few classes (measured: 16 vs 150 ms at
    2,900 x 1,920 x 10), which made the probe 3-4x faster end to end.

    Only the two GEMMs run on the caller's torch threads; L-BFGS's own vector work (hundreds of
    thousands of dot products and axpys on one ~15k-float vector) runs on ``vector_threads``
    (``None``: the caller's too). One is fastest: an OpenMP wake-up per op costs more than the
    op, 62 vs 2.6 us per dot with two threads under ``OMP_WAIT_POLICY=PASSIVE``, which every
    run sets for FFCV (``python -m experiments bench probe`` prints the comparison).
    """
    x = _as_tensor(x, torch.float32).contiguous()
    y = _as_tensor(y, torch.long)
    dim = x.shape[1]
    onehot = F.one_hot(y, num_classes).to(torch.float32)
    inv_n = 1.0 / max(1, len(y))
    start = (
        torch.cat([init.weight.reshape(-1), init.bias])
        if init
        else torch.zeros(dim * num_classes + num_classes)
    )
    param = start.clone().requires_grad_()

    gemm_threads = torch.get_num_threads()

    def loss_and_grad(flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        weight = flat[: dim * num_classes].view(dim, num_classes)
        with _torch_threads(gemm_threads):
            logits = torch.addmm(flat[dim * num_classes :], x, weight)
        lse = torch.logsumexp(logits, dim=1)
        loss = (lse.sum() - (logits * onehot).sum()) * inv_n + 0.5 * l2 * weight.pow(2).sum()
        resid = torch.exp(logits - lse[:, None]).sub_(onehot).mul_(inv_n)  # dLoss/dlogits
        with _torch_threads(gemm_threads):
            grad_w = torch.mm(resid.t(), x).t() + l2 * weight
        return loss, torch.cat([grad_w.reshape(-1), resid.sum(0)])

    opt = torch.optim.LBFGS(
        [param],
        lr=1.0,
        max_iter=max_iter,
        history_size=20,
        tolerance_grad=tol,
        tolerance_change=1e-10,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        with torch.no_grad():
            loss, grad = loss_and_grad(param.detach())
        param.grad = grad
        return loss

    with _torch_threads(vector_threads or gemm_threads):
        opt.step(closure)
    iterations = opt.state[opt._params[0]].get("n_iter", 0)
    flat = param.detach()
    return SoftmaxRegression(
        flat[: dim * num_classes].view(dim, num_classes).clone(),
        flat[dim * num_classes :].clone(),
        int(iterations),
    )


def topk_accuracy(logits: torch.Tensor, y: torch.Tensor, k: int) -> float:
    """Share of rows whose label is among the k highest logits (k capped at the class count)."""
    k = min(k, logits.shape[1])
    top = logits.topk(k, dim=1).indices
    return float((top == y[:, None]).any(1).float().mean())
