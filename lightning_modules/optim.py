"""SGD, linear learning-rate scaling, warm-up and decay, with the length counted in images seen.

* Learning rate: ``lr = base_lr * global_batch / reference_batch`` (Goyal et al. 2017), with
  ``global_batch = batch_size * devices * num_nodes * accumulate``.
* Warm-up (Goyal et al.): over the first ``warmup_images`` the rate rises linearly from
  ``base_lr`` (the unscaled rate, factor ``reference_batch / global_batch``) to the scaled rate.
  When ``global_batch <= reference_batch`` there is nothing to ramp up from and the factor
  rises from 0 instead, so a small CPU run still warms up.
* Decay after warm-up: ``step`` multiplies by ``decay_factor`` at ``decay_steps`` equally spaced
  points of the whole schedule (at ``i / (decay_steps + 1)`` of the images, i = 1..decay_steps);
  ``cosine`` anneals from 1 to 0 over the post-warm-up part.
* Schedule length: ``schedule.images_seen``, or when it is 0 the paper's heuristic
  (:func:`heuristic_images_seen`).

Everything is a :class:`~torch.optim.lr_scheduler.LambdaLR` over optimizer steps.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn

from datamodules.errors import UserInputError
from lightning_modules.model_config import DECAYS

if TYPE_CHECKING:
    from lightning_modules.model_config import OptimConfig, ScheduleConfig


def param_groups(net: nn.Module, weight_decay: float, exclude_bn_bias: bool) -> list[dict]:
    """Two groups: decayed weights, and (when excluded) BN parameters and biases without decay.

    One-dimensional parameters are exactly the BN gammas/betas and the biases.
    """
    decay, no_decay = [], []
    for _, p in net.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if exclude_bn_bias and p.ndim <= 1 else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def scaled_lr(base_lr: float, global_batch: int, reference_batch: int) -> float:
    """Linear scaling rule: ``base_lr * global_batch / reference_batch``."""
    if global_batch < 1 or reference_batch < 1:
        raise UserInputError(
            "batch sizes must be >= 1 (data.loading.batch_size, optim.reference_batch)"
        )
    return base_lr * global_batch / reference_batch


def build_sgd(net: nn.Module, optim_cfg: OptimConfig, global_batch: int) -> torch.optim.SGD:
    """SGD (Nesterov momentum by default) at the linearly scaled learning rate."""
    if optim_cfg.nesterov and optim_cfg.momentum <= 0:
        raise UserInputError("optim.nesterov=true needs optim.momentum > 0")
    lr = scaled_lr(optim_cfg.base_lr, global_batch, optim_cfg.reference_batch)
    groups = param_groups(net, optim_cfg.weight_decay, optim_cfg.wd_exclude_bn_bias)
    return torch.optim.SGD(
        groups, lr=lr, momentum=optim_cfg.momentum, nesterov=bool(optim_cfg.nesterov)
    )


def heuristic_images_seen(num_train: int, schedule_cfg: ScheduleConfig) -> int:
    """The paper's schedule-length heuristic: interpolate between two (dataset, epochs) extremes.

    With ``N_s, E_s`` = (heuristic_small_dataset, heuristic_small_epochs) and ``N_l, E_l`` the
    large ones, and ``t = clip(log(N / N_s) / log(N_l / N_s), 0, 1)``:
    ``epochs(N) = exp((1 - t) log E_s + t log E_l)`` and ``images_seen = round(N * epochs(N))``.
    Inside the range log(images seen) is linear in log(N), from ``N_s * E_s`` (144M with the
    defaults) to ``N_l * E_l`` (7B); outside it the epochs are clamped (E_s for smaller sets).
    """
    n_s, n_l = schedule_cfg.heuristic_small_dataset, schedule_cfg.heuristic_large_dataset
    e_s, e_l = schedule_cfg.heuristic_small_epochs, schedule_cfg.heuristic_large_epochs
    if num_train < 1:
        raise UserInputError("the schedule heuristic needs a non-empty training set")
    if not (0 < n_s < n_l) or e_s <= 0 or e_l <= 0:
        raise UserInputError(
            "schedule.heuristic_*: need 0 < small_dataset < large_dataset and positive epochs"
        )
    t = min(max(math.log(num_train / n_s) / math.log(n_l / n_s), 0.0), 1.0)
    epochs = math.exp((1 - t) * math.log(e_s) + t * math.log(e_l))
    return max(1, round(num_train * epochs))


def total_images(schedule_cfg: ScheduleConfig, num_train: int) -> int:
    if schedule_cfg.images_seen < 0:
        raise UserInputError("schedule.images_seen must be >= 0 (0 = the paper's heuristic)")
    if schedule_cfg.images_seen > 0:
        return int(schedule_cfg.images_seen)
    return heuristic_images_seen(num_train, schedule_cfg)


def num_steps(images: int, global_batch: int) -> int:
    """Optimizer steps that see at least ``images`` images."""
    return max(1, math.ceil(images / global_batch))


def lr_factor(
    step: int,
    *,
    total_steps: int,
    warmup_steps: int,
    warmup_start: float,
    decay: str,
    decay_steps: int = 3,
    decay_factor: float = 0.1,
) -> float:
    """Multiplier of the scaled learning rate at optimizer step ``step`` (0-based)."""
    if step < warmup_steps:
        return warmup_start + (1.0 - warmup_start) * step / warmup_steps
    if decay == "step":
        drops = math.floor(step * (decay_steps + 1) / total_steps) if total_steps else 0
        return decay_factor ** min(drops, decay_steps)
    if decay == "cosine":
        span = max(1, total_steps - warmup_steps)
        progress = min(1.0, (step - warmup_steps) / span)
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if decay == "none":
        return 1.0
    raise UserInputError(f"schedule.decay must be 'step', 'cosine' or 'none', got '{decay}'")


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    schedule_cfg: ScheduleConfig,
    optim_cfg: OptimConfig,
    *,
    global_batch: int,
    num_train: int,
) -> tuple[torch.optim.lr_scheduler.LambdaLR, dict]:
    """The LambdaLR over optimizer steps and a summary (steps, images, learning rates)."""
    images = total_images(schedule_cfg, num_train)
    total = num_steps(images, global_batch)
    warmup = min(total, math.ceil(schedule_cfg.warmup_images / global_batch))
    if global_batch > optim_cfg.reference_batch:
        start = optim_cfg.reference_batch / global_batch
    else:
        start = 0.0
    if schedule_cfg.decay not in (*DECAYS, "none"):  # "none": fine-tuning's constant tail
        raise UserInputError(
            f"schedule.decay must be one of {', '.join(DECAYS)}, got '{schedule_cfg.decay}'"
        )

    def factor(step: int) -> float:
        return lr_factor(
            step,
            total_steps=total,
            warmup_steps=warmup,
            warmup_start=start,
            decay=schedule_cfg.decay,
            decay_steps=schedule_cfg.decay_steps,
            decay_factor=schedule_cfg.decay_factor,
        )

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    summary = {
        "images_seen": images,
        "total_steps": total,
        "warmup_steps": warmup,
        "global_batch": global_batch,
        "peak_lr": scaled_lr(optim_cfg.base_lr, global_batch, optim_cfg.reference_batch),
    }
    return scheduler, summary
