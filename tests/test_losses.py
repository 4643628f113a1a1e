"""Sparse multi-label softmax vs the dense soft-target formulation; sigmoid ablation."""

import pytest
import torch
import torch.nn.functional as F

from lightning_modules.losses import (
    dense_soft_target_loss,
    multilabel_sigmoid_loss,
    multilabel_softmax_loss,
)


def _labels(rows, width):
    out = torch.full((len(rows), width), -1, dtype=torch.int32)
    for i, ids in enumerate(rows):
        out[i, : len(ids)] = torch.tensor(ids, dtype=torch.int32)
    return out


def _classy_reference(logits, labels):
    """ClassyVision SoftTargetCrossEntropyLoss(normalize_targets=True), mean over labelled rows."""
    multi_hot = torch.zeros_like(logits)
    for i, row in enumerate(labels.tolist()):
        for c in row:
            if c >= 0:
                multi_hot[i, c] = 1.0
    eps = torch.finfo(torch.float32).eps
    targets = multi_hot / (eps + multi_hot.sum(dim=1, keepdim=True))
    per_sample = -(targets * F.log_softmax(logits, dim=-1)).sum(-1)
    labelled = multi_hot.sum(1) > 0
    return per_sample.sum() / labelled.sum()


def test_sparse_softmax_equals_dense_reference_float64():
    torch.manual_seed(0)
    rows = [[3], [0, 7], [1, 2, 9], [5, 6, 8, 4], [], [11, 2]]  # 1..4 labels, padding, one empty
    labels = _labels(rows, width=5)
    logits = torch.randn(len(rows), 13, dtype=torch.float64) * 3
    sparse = multilabel_softmax_loss(logits, labels)
    torch.testing.assert_close(sparse, _classy_reference(logits, labels), atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(sparse, dense_soft_target_loss(logits, labels), atol=1e-12, rtol=0)
    # the empty row is excluded from the mean: dropping it changes nothing
    keep = [i for i, r in enumerate(rows) if r]
    torch.testing.assert_close(sparse, multilabel_softmax_loss(logits[keep], labels[keep]))


def test_sparse_softmax_gradient_equals_dense():
    torch.manual_seed(1)
    labels = _labels([[0, 4], [2], [], [1, 3, 5]], width=4)
    a = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    b = a.detach().clone().requires_grad_(True)
    multilabel_softmax_loss(a, labels).backward()
    dense_soft_target_loss(b, labels).backward()
    torch.testing.assert_close(a.grad, b.grad, atol=1e-12, rtol=0)


def test_single_label_equals_cross_entropy():
    torch.manual_seed(2)
    logits = torch.randn(8, 20, dtype=torch.float64)
    target = torch.randint(0, 20, (8,))
    labels = torch.cat([target[:, None], torch.full((8, 2), -1)], dim=1).int()
    torch.testing.assert_close(
        multilabel_softmax_loss(logits, labels), F.cross_entropy(logits, target)
    )


def test_repeated_label_counts_once():
    logits = torch.randn(1, 6, dtype=torch.float64)
    torch.testing.assert_close(
        multilabel_softmax_loss(logits, _labels([[2, 2, 4]], 3)),
        multilabel_softmax_loss(logits, _labels([[2, 4]], 3)),
    )


def test_no_labelled_image_gives_zero_with_gradient():
    logits = torch.randn(2, 5, requires_grad=True)
    loss = multilabel_softmax_loss(logits, _labels([[], []], 2))
    loss.backward()
    assert float(loss) == 0.0 and logits.grad is not None


def test_sigmoid_equals_bce_with_logits_summed_over_classes():
    torch.manual_seed(3)
    rows = [[1, 3], [0], [], [2, 4, 5]]
    labels = _labels(rows, 4)
    logits = torch.randn(4, 7, dtype=torch.float64)
    multi_hot = torch.zeros_like(logits)
    for i, r in enumerate(rows):
        multi_hot[i, r] = 1.0
    dense = F.binary_cross_entropy_with_logits(logits, multi_hot, reduction="none").sum(1).mean()
    torch.testing.assert_close(multilabel_sigmoid_loss(logits, labels), dense, atol=1e-12, rtol=0)


def test_bf16_logits_are_upcast():
    logits = torch.randn(4, 50).bfloat16()
    labels = _labels([[1], [2, 3], [4], [5]], 2)
    loss = multilabel_softmax_loss(logits, labels)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(
        dense_soft_target_loss(logits.float(), labels).item(), abs=1e-5
    )
