"""Hashtag losses computed from sparse, padded label ids (never a dense B x V target).

Labels are int [B, W] with an image's canonical hashtag ids, padded with -1.

* :func:`multilabel_softmax_loss` (the paper): target 1/k on each of an image's k hashtags,
  softmax cross-entropy against it. Since the target sums to one,
  ``-sum_c t_c log softmax(z)_c = logsumexp(z) - mean_{c in labels} z_c``, which needs only a
  gather of W logits per image. Averaged over the images with at least one label (an image
  with no hashtag has no target distribution). Equal to the dense soft-target cross-entropy
  with normalised targets (ClassyVision's ``SoftTargetCrossEntropyLoss(normalize_targets=True)``
  up to its eps; note ClassyVision divides by all rows of the batch, including label-less ones).
* :func:`multilabel_sigmoid_loss` (the ablation): per-hashtag binary cross-entropy,
  ``sum_c BCE(z_c, y_c) = sum_c softplus(z_c) - sum_{c in labels} z_c``.

  Reduction: **summed over the V classes, averaged over all images of the batch** (a
  label-less image still supplies V negatives). Not divided by V: a positive's gradient,
  ``sigmoid(z_c) - 1``, then has the scale of the softmax's ``softmax(z)_c - 1/k``, so the two
  losses move the network at comparable learning rates; a mean over classes would shrink every
  gradient by 1/V (hundreds to 17k) and hand the difference to the learning rate.

  Initialization (:func:`sigmoid_prior_bias`, used by ``HashtagPretrainer``): summed over V
  classes, the negatives' gradient at a zero bias is ``sum_c sigmoid(0) = V / 2`` per image
  against about k = 2 for the positives, so the first steps only push every logit down. With
  the classifier bias at the prior logit ``b_c = log(p_c / (1 - p_c))`` (focal loss; SigLIP's
  learned bias starts at a fixed negative prior), each class starts at its expected value:
  the mean predicted probability is p_c, the negatives' gradient sums to ``sum_c p_c``, the
  expected number of labels, and the initial loss is the prior's entropy
  ``sum_c H(p_c)`` (:func:`expected_sigmoid_loss`). ``model.sigmoid_prior``: ``frequency``
  (default) p_c = the hashtag's share of training images carrying it (n_c / N, clipped to
  [1/2N, 1 - 1/2N]); ``uniform`` p_c = 1/V; ``none`` leaves the layer's default init (the
  mis-set ablation of issue 14).

  Its learning rate is its own: ``optim.sigmoid_lr_mult`` multiplies ``optim.base_lr`` for
  this loss (default from the scan in the README).

Repeated ids in a row count once, exactly as in a multi-hot target (label noise never makes
one; a hand-written row may).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lightning_modules.model_config import LOSS_NAMES


def unique_label_mask(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sorted labels [B, W] (long) and a mask of the valid, first-occurrence entries."""
    ids = labels.long()
    sorted_ids, _ = torch.sort(ids, dim=1)
    valid = sorted_ids >= 0
    repeat = torch.zeros_like(valid)
    repeat[:, 1:] = sorted_ids[:, 1:] == sorted_ids[:, :-1]
    return sorted_ids, valid & ~repeat


def _positive_logit_sums(logits: torch.Tensor, labels: torch.Tensor):
    if labels.shape[0] != logits.shape[0] or labels.ndim != 2:
        raise ValueError(
            f"labels must be [B, W] with B={logits.shape[0]}, got {tuple(labels.shape)}"
        )
    ids, mask = unique_label_mask(labels)
    if mask.any() and int(ids.max()) >= logits.shape[1]:
        raise ValueError(f"label id {int(ids.max())} >= number of classes {logits.shape[1]}")
    gathered = logits.gather(1, ids.clamp(min=0))
    pos_sum = (gathered * mask).sum(dim=1)
    return pos_sum, mask.sum(dim=1)


def _at_least_fp32(logits: torch.Tensor) -> torch.Tensor:
    """bf16/fp16 logits (autocast) are upcast: logsumexp over 17k classes needs fp32."""
    return logits if logits.dtype in (torch.float32, torch.float64) else logits.float()


def multilabel_softmax_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean over labelled images of ``logsumexp(z) - mean_{c in labels} z_c``.

    Computed as ``-mean_{c in labels} log_softmax(z)_c``, the same value, because PyTorch's
    fused log-softmax kernel (forward and backward) is what plain cross-entropy uses too.
    """
    z = _at_least_fp32(logits)
    log_probs = F.log_softmax(z, dim=1)
    pos_sum, k = _positive_logit_sums(log_probs, labels)
    has = k > 0
    per_image = -pos_sum / k.clamp(min=1)
    return (per_image * has).sum() / has.sum().clamp(min=1)


def multilabel_sigmoid_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean over images of ``sum_c BCE-with-logits(z_c, y_c)`` with y the multi-hot labels
    (summed over classes, averaged over the batch; see the module docstring for why)."""
    z = _at_least_fp32(logits)
    pos_sum, _ = _positive_logit_sums(z, labels)
    per_image = F.softplus(z).sum(dim=1) - pos_sum
    return per_image.mean()


def prior_probabilities(counts, num_images: int, prior: str = "frequency") -> torch.Tensor:
    """p_c float64 [V] for :func:`sigmoid_prior_bias`: ``frequency`` n_c / N clipped to
    [1/(2N), 1 - 1/(2N)] (a hashtag absent from, or on every one of, N images stays finite);
    ``uniform`` 1/V."""
    counts = torch.as_tensor(counts, dtype=torch.float64).reshape(-1)
    if prior == "uniform":
        return torch.full_like(counts, 1.0 / len(counts))
    if prior != "frequency":
        raise ValueError(f"no prior probabilities for model.sigmoid_prior={prior!r}")
    if num_images < 1 or (counts < 0).any() or (counts > num_images).any():
        raise ValueError(f"hashtag counts must lie in 0..num_images={num_images}")
    eps = 0.5 / num_images
    return (counts / num_images).clamp(eps, 1.0 - eps)


def sigmoid_prior_bias(counts, num_images: int, prior: str = "frequency") -> torch.Tensor:
    """The classifier bias [V] (float32) at which ``sigmoid(b_c) = p_c``: ``log(p / (1 - p))``."""
    p = prior_probabilities(counts, num_images, prior)
    return torch.logit(p).float()


def expected_sigmoid_loss(p: torch.Tensor) -> torch.Tensor:
    """``sum_c H(p_c)``: :func:`multilabel_sigmoid_loss` expected over images whose label c is
    present with probability p_c, when every logit is ``logit(p_c)``."""
    p = torch.as_tensor(p, dtype=torch.float64)
    return -(p * p.log() + (1 - p) * (1 - p).log()).sum()


LOSSES = dict(zip(LOSS_NAMES, (multilabel_softmax_loss, multilabel_sigmoid_loss), strict=True))


def get_loss(name: str):
    from datamodules.errors import UserInputError

    if name not in LOSSES:
        raise UserInputError(f"model.loss must be one of {', '.join(LOSSES)}, got '{name}'")
    return LOSSES[name]


def dense_soft_target_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Reference: multi-hot / k targets, ``-sum t log_softmax``, mean over labelled images.

    Builds the B x V target the sparse version avoids; used by tests and the loss benchmark.
    """
    ids, mask = unique_label_mask(labels)
    target = torch.zeros_like(logits)
    target.scatter_add_(1, ids.clamp(min=0), mask.to(logits.dtype))
    k = target.sum(dim=1, keepdim=True)
    has = k.squeeze(1) > 0
    target = target / k.clamp(min=1)
    per_image = -(target * F.log_softmax(logits, dim=1)).sum(dim=1)
    return per_image[has].sum() / has.sum().clamp(min=1)
