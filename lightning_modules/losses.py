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
  ``sum_c BCE(z_c, y_c) = sum_c softplus(z_c) - sum_{c in labels} z_c``, summed over the V
  classes (not divided by V, so a positive's gradient has the same scale as in the softmax)
  and averaged over all images of the batch (a label-less image still supplies V negatives).

Repeated ids in a row (label noise can draw an image's own hashtag again) count once, exactly
as in a multi-hot target.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


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
    """Mean over images of ``sum_c BCE-with-logits(z_c, y_c)`` with y the multi-hot labels."""
    z = _at_least_fp32(logits)
    pos_sum, _ = _positive_logit_sums(z, labels)
    per_image = F.softplus(z).sum(dim=1) - pos_sum
    return per_image.mean()


LOSSES = {"softmax": multilabel_softmax_loss, "sigmoid": multilabel_sigmoid_loss}


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
