"""Linear scaling, warm-up, step/cosine decay, schedule heuristic, weight-decay groups."""

import math

import pytest
import torch

from datamodules.errors import UserInputError
from experiments.config import OptimConfig, ScheduleConfig
from lightning_modules.optim import (
    build_scheduler,
    build_sgd,
    heuristic_images_seen,
    param_groups,
    scaled_lr,
)


def _cfgs(**schedule):
    """The schema's optim and schedule sections with the values these tests assume."""
    optim = OptimConfig(
        base_lr=0.1,
        reference_batch=256,
        momentum=0.9,
        nesterov=True,
        weight_decay=1e-4,
        wd_exclude_bn_bias=True,
    )
    fields = dict(
        images_seen=1_000_000,
        warmup_images=100_000,
        decay="step",
        decay_steps=3,
        decay_factor=0.1,
        accumulate=1,
        heuristic_small_dataset=1_200_000,
        heuristic_small_epochs=120.0,
        heuristic_large_dataset=3_500_000_000,
        heuristic_large_epochs=2.0,
    )
    return optim, ScheduleConfig(**{**fields, **schedule})


def _lrs(optim_cfg, sched_cfg, global_batch, steps):
    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    opt = build_sgd(net, optim_cfg, global_batch)
    sched, summary = build_scheduler(
        opt, sched_cfg, optim_cfg, global_batch=global_batch, num_train=10
    )
    out = {}
    for step in range(max(steps) + 1):
        if step in steps:
            out[step] = opt.param_groups[0]["lr"]
        opt.step()
        sched.step()
    return out, summary


def test_linear_scaling_rule():
    assert scaled_lr(0.1, 8064, 256) == pytest.approx(3.15)


def test_warmup_then_step_decay_paper_batch():
    optim, sched = _cfgs()
    # global batch 10,000: 100 steps total, 10 warm-up steps, drops at steps 25, 50, 75
    lrs, summary = _lrs(optim, sched, 10_000, [0, 5, 10, 24, 25, 50, 75, 99])
    peak = 0.1 * 10_000 / 256
    assert summary["total_steps"] == 100 and summary["warmup_steps"] == 10
    assert lrs[0] == pytest.approx(0.1)  # Goyal: start at the unscaled rate
    assert lrs[5] == pytest.approx(0.1 + (peak - 0.1) * 0.5)
    assert lrs[10] == pytest.approx(peak)
    assert lrs[24] == pytest.approx(peak)
    assert lrs[25] == pytest.approx(peak * 0.1)
    assert lrs[50] == pytest.approx(peak * 0.01)
    assert lrs[75] == pytest.approx(peak * 0.001)
    assert lrs[99] == pytest.approx(peak * 0.001)


def test_warmup_from_zero_below_reference_batch_then_cosine():
    optim, sched = _cfgs(images_seen=6400, warmup_images=640, decay="cosine")
    lrs, summary = _lrs(optim, sched, 64, [0, 5, 10, 55, 99])
    peak = 0.1 * 64 / 256
    assert summary["total_steps"] == 100 and summary["warmup_steps"] == 10
    assert lrs[0] == 0.0
    assert lrs[5] == pytest.approx(peak * 0.5)
    assert lrs[10] == pytest.approx(peak)
    assert lrs[55] == pytest.approx(peak * 0.5 * (1 + math.cos(math.pi * 45 / 90)))
    assert lrs[99] == pytest.approx(peak * 0.5 * (1 + math.cos(math.pi * 89 / 90)))


def test_heuristic_hits_both_extremes_and_interpolates_on_log_scale():
    _, sched = _cfgs(images_seen=0)
    assert heuristic_images_seen(1_200_000, sched) == 144_000_000
    assert heuristic_images_seen(3_500_000_000, sched) == 7_000_000_000
    assert heuristic_images_seen(20_000, sched) == 20_000 * 120  # clamped: small sets get E_s
    mid = math.sqrt(1_200_000 * 3_500_000_000)  # halfway in log(N): sqrt of the epoch extremes
    assert heuristic_images_seen(int(mid), sched) == pytest.approx(mid * math.sqrt(240), rel=1e-6)


def test_param_groups_exclude_bn_and_bias():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    groups = param_groups(net, 1e-4, exclude_bn_bias=True)
    assert [len(g["params"]) for g in groups] == [1, 3]
    assert groups[1]["weight_decay"] == 0.0
    assert len(param_groups(net, 1e-4, exclude_bn_bias=False)) == 1


def test_bad_decay_is_user_error():
    optim, sched = _cfgs(decay="linear")
    with pytest.raises(UserInputError, match="schedule.decay"):
        _lrs(optim, sched, 256, [0])
