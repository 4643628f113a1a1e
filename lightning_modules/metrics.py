"""Hashtag precision@k as torchmetrics Metrics (sum/count states, so DDP syncs them).

precision@k of one image = (number of its top-k predicted hashtags that are among its
hashtags) / k; the metric is the mean over images with at least one hashtag. With ~2 hashtags
per image, precision@5 is at most ~0.4 by construction: compare runs, not to 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchmetrics import Metric

from lightning_modules.losses import unique_label_mask


def precision_hits(
    logits: torch.Tensor, labels: torch.Tensor, ks: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-k sums of per-image precision@k [len(ks)] and the number of labelled images."""
    ids, mask = unique_label_mask(labels)
    ids = torch.where(mask, ids, torch.full_like(ids, -1))
    has = mask.any(dim=1)
    kmax = min(max(ks), logits.shape[1])
    top = logits.topk(kmax, dim=1).indices  # [B, kmax]
    hit = (top.unsqueeze(2) == ids.unsqueeze(1)).any(dim=2)  # [B, kmax]
    sums = []
    for k in ks:
        per_image = hit[:, :k].sum(dim=1).float() / k
        sums.append((per_image * has).sum())
    return torch.stack(sums), has.sum()


class HashtagPrecision(Metric):
    """``compute()`` returns ``{"precision_at_1": .., "precision_at_5": ..}`` for ks=(1, 5)."""

    full_state_update = False
    higher_is_better = True

    def __init__(self, ks: Sequence[int] = (1, 5), **kwargs):
        super().__init__(**kwargs)
        self.ks = tuple(int(k) for k in ks)
        self.add_state("hits", default=torch.zeros(len(self.ks)), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0.0), dist_reduce_fx="sum")

    def update(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        sums, count = precision_hits(logits.detach(), labels, self.ks)
        self.hits += sums.to(self.hits)
        self.count += count.to(self.count)

    def compute(self) -> dict[str, torch.Tensor]:
        values = self.hits / self.count.clamp(min=1)
        return {f"precision_at_{k}": values[i] for i, k in enumerate(self.ks)}


class HashtagPrecisionAtK(HashtagPrecision):
    """precision@k for one k, as a scalar: a Metric that ``LightningModule.log`` takes as is
    (Lightning then computes it once over all ranks and resets it at the end of the epoch)."""

    def __init__(self, k: int, **kwargs):
        super().__init__((k,), **kwargs)

    def compute(self) -> torch.Tensor:  # type: ignore[override]
        return self.hits[0] / self.count.clamp(min=1)
