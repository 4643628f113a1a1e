"""Sparse multi-label softmax vs the dense soft-target formulation; the sigmoid ablation: its
reduction, prior bias initialization and own learning rate."""

import pytest
import torch
import torch.nn.functional as F

from lightning_modules.losses import (
    dense_soft_target_loss,
    expected_sigmoid_loss,
    multilabel_sigmoid_loss,
    multilabel_softmax_loss,
    prior_probabilities,
    sigmoid_prior_bias,
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


# ---- sigmoid: prior bias, reduction, learning rate ------------------------------------------
def test_prior_bias_gives_p_and_the_expected_loss_exactly():
    """With every logit at logit(p_c), p_c the empirical frequencies, the loss over the images
    is the prior's entropy sum_c H(p_c): the sum over classes / mean over images reduction."""
    labels = _labels([[0, 1], [1], [2, 0], [1, 2, 3], [0], [3, 1]], 3)
    counts = torch.bincount(labels[labels >= 0].long(), minlength=4)
    bias = sigmoid_prior_bias(counts, len(labels)).double()
    p = counts.double() / len(labels)
    torch.testing.assert_close(torch.sigmoid(bias), p, rtol=1e-6, atol=0)
    logits = bias.expand(len(labels), -1).clone()
    loss = multilabel_sigmoid_loss(logits, labels)
    torch.testing.assert_close(loss, expected_sigmoid_loss(p), rtol=1e-6, atol=0)
    # the documented reduction: per image the sum over the V classes, then the batch mean
    per_image = [multilabel_sigmoid_loss(logits[i : i + 1], labels[i : i + 1]) for i in range(6)]
    torch.testing.assert_close(loss, torch.stack(per_image).mean())


def test_prior_probabilities_clip_and_uniform():
    p = prior_probabilities([0, 3, 10], 10)
    torch.testing.assert_close(p, torch.tensor([0.05, 0.3, 0.95], dtype=torch.float64))
    assert torch.isfinite(sigmoid_prior_bias([0, 3, 10], 10)).all()
    u = sigmoid_prior_bias([5, 0, 0, 1], 0, "uniform")
    torch.testing.assert_close(torch.sigmoid(u), torch.full((4,), 0.25))
    with pytest.raises(ValueError, match="num_images"):
        prior_probabilities([11], 10)


def _pretrainer(tmp_path, loss: str, *extra: str):
    from experiments.config import load_config, to_dict
    from lightning_modules.pretrain import HashtagPretrainer
    from tests.fake_data import fake_datamodule, tiny_overrides

    cfg = load_config(None, [*tiny_overrides(tmp_path, "t"), f"model.loss={loss}", *extra])
    dm = fake_datamodule()
    model = HashtagPretrainer(to_dict(cfg), dm.vocab_size, dm.hashtags, num_train=dm.num_train)
    return model, dm


def _fit_zero_steps(model, dm, tmp_path):
    import lightning as L

    trainer = L.Trainer(
        max_steps=0,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, datamodule=dm)
    return trainer


def test_fresh_sigmoid_model_starts_at_the_prior(tmp_path):
    torch.manual_seed(0)
    model, dm = _pretrainer(tmp_path, "sigmoid")
    _fit_zero_steps(model, dm, tmp_path)
    counts = torch.tensor(dm.hashtag_counts, dtype=torch.float64)
    p = counts / dm.num_train
    model.eval()
    with torch.no_grad():
        logits = model(dm.train_images).double()
        loss = multilabel_sigmoid_loss(logits, dm.train_labels)
    # the initial mean predicted probability of each hashtag is its frequency, and the
    # initial loss is the prior's entropy (the random weights add logits of std ~0.05)
    torch.testing.assert_close(torch.sigmoid(logits).mean(0), p, rtol=0.03, atol=0)
    torch.testing.assert_close(loss, expected_sigmoid_loss(p), rtol=0.01, atol=0)


def test_sigmoid_prior_is_kept_off_for_softmax_and_none(tmp_path):
    for loss, extra in (("softmax", ()), ("sigmoid", ("model.sigmoid_prior=none",))):
        torch.manual_seed(0)
        model, dm = _pretrainer(tmp_path, loss, *extra)
        before = model.net.fc.bias.detach().clone()
        _fit_zero_steps(model, dm, tmp_path)
        assert torch.equal(model.net.fc.bias.detach(), before)


def test_sigmoid_has_its_own_learning_rate(tmp_path):
    rates = {}
    for loss in ("softmax", "sigmoid"):
        model, dm = _pretrainer(tmp_path, loss, "optim.sigmoid_lr_mult=0.25")
        trainer = _fit_zero_steps(model, dm, tmp_path)
        rates[loss] = model.schedule["peak_lr"]
        assert trainer.optimizers[0].defaults["lr"] == pytest.approx(rates[loss])
    # optim.base_lr=0.4 per 256 images at batch 32 (tiny_overrides)
    assert rates["softmax"] == pytest.approx(0.4 * 32 / 256)
    assert rates["sigmoid"] == pytest.approx(0.25 * rates["softmax"])
