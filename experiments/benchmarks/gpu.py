"""`python -m experiments bench gpu`: the GPU path measured on one device (scripts/gpu_check.sh).

Prints, for the paper's model (ResNeXt-101 32x8d) at 224 px:

1. ``loader``: HashtagDataModule's FFCV training loader (seeded random resized crop + flip,
   ``ToDevice(non_blocking=True)``) delivering uint8 NCHW batches into GPU memory, images/s
   (median of ``--loader-epochs`` epochs after a warm-up epoch that pays FFCV's compile);
2. ``model``: full training steps (normalise -> forward under bf16 autocast, channels_last ->
   multi-label softmax -> backward -> SGD) on in-memory batches, images/s, with and without
   ``torch.compile``, at each per-GPU batch of ``--batches`` (default 24, the paper's, and 64);
   peak memory (``torch.cuda.max_memory_allocated``) per configuration;
3. MFU = (training FLOPs per step, counted by ``torch.utils.flop_counter.FlopCounterMode`` over
   one forward + backward) x steps/s / peak. The peak is stated here: the H200's dense bf16
   tensor-core rate from NVIDIA's datasheet (:data:`H200_PEAK_BF16_TFLOPS`; ``--peak-tflops``
   for another device), and MFU is also given against the rate of a large bf16 matrix product
   measured on this device in the same run (``matmul_tflops``), the practical ceiling;
4. ``bound``: per configuration, whichever of the loader and the model delivers fewer
   images/s bounds the step (both measured on this machine; the loader with all its cores).

``--budget-s``: configurations that would start after the budget are skipped and listed, so
the script ends in time on a short rental. On the CPU (``--device cpu``) everything runs the
same way at a size the CPU can take (``--model rx-tiny --resolution 64``): bf16 autocast, the
FLOP counter, ``torch.compile`` (``--compile on``), the loader into CPU memory.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

from datamodules.errors import UserInputError
from experiments.config import REPO_ROOT

# NVIDIA H200 SXM datasheet: dense BF16 tensor-core peak (the 1,979 TFLOP/s figure is with
# 2:4 sparsity); the same chip's matrix units as the H100 SXM
H200_PEAK_BF16_TFLOPS = 989.0
MODELS = {
    "rx101_32x8d": "configs/model/rx101_32x8d.yaml",
    "rx-tiny": "configs/model/rx-tiny.yaml",
}
COMPILE_CHOICES = {"off": (False,), "on": (True,), "both": (False, True)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cuda", help="cuda | cuda:N | cpu")
    parser.add_argument("--model", default="rx101_32x8d", help="rx101_32x8d | rx-tiny | a yaml")
    parser.add_argument("--batches", default="24,64", help="per-GPU batch sizes, comma-separated")
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--vocab", type=int, default=17000, help="head width (hashtags)")
    parser.add_argument("--compile", default="both", choices=sorted(COMPILE_CHOICES))
    parser.add_argument("--steps", type=int, default=20, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    parser.add_argument("--peak-tflops", type=float, default=H200_PEAK_BF16_TFLOPS)
    parser.add_argument("--loader-images", type=int, default=4096)
    parser.add_argument("--loader-size", type=int, default=256, help="stored image side (px)")
    parser.add_argument("--loader-workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--loader-epochs", type=int, default=3)
    parser.add_argument("--skip-loader", action="store_true")
    parser.add_argument("--cache-dir", default=".cache/bench-gpu")
    parser.add_argument("--budget-s", type=float, default=0.0, help="0 = no time budget")


def parse_batches(text: str) -> list[int]:
    try:
        batches = [int(b) for b in str(text).split(",") if b.strip()]
    except ValueError:
        batches = []
    if not batches or min(batches) < 1:
        raise UserInputError(f"--batches={text!r}: give positive integers, e.g. --batches 24,64")
    return batches


def resolve_device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserInputError(f"--device={name!r}: use cuda, cuda:N or cpu") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserInputError(f"--device={name}: no CUDA device here; use --device cpu")
    if device.type not in ("cuda", "cpu"):
        raise UserInputError(f"--device={name!r}: use cuda, cuda:N or cpu")
    return device


def model_config(name: str):
    from experiments.config import load_config

    path = MODELS.get(name, name)
    if not (REPO_ROOT / path).is_file() and not Path(path).is_file():
        raise UserInputError(f"--model={name!r}: one of {', '.join(MODELS)} or a model yaml")
    return load_config(str(REPO_ROOT / path if (REPO_ROOT / path).is_file() else path)).model


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_tflops(device: torch.device, n: int = 8192, reps: int = 10) -> float:
    """bf16 n x n x n matrix products on random data: the device's practical peak, TFLOP/s."""
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    _sync(device)
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    _sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - start) / 1e12


def _conv_backward_flops(
    grad_out_shape,
    x_shape,
    w_shape,
    _bias,
    _stride,
    _padding,
    _dilation,
    transposed,
    _output_padding,
    _groups,
    output_mask,
    out_shape=None,
    **kwargs,
) -> int:
    """A convolution's backward: the input gradient and the weight gradient each cost what the
    forward costs (the weight shape already holds C_in / groups). torch's own formula (2.14)
    counts the weight gradient of a grouped convolution ``groups`` times (the transposed shapes
    lose the group split), which for ResNeXt's 32-group convolutions inflates the count
    several-fold (pytorch/pytorch#183405)."""
    from torch.utils.flop_counter import conv_flop_count

    forward = conv_flop_count(list(x_shape), list(w_shape), list(grad_out_shape), transposed)
    return forward * (int(bool(output_mask[0])) + int(bool(output_mask[1])))


def training_flops(step) -> int:
    """FLOPs of one call of ``step`` (forward + backward + optimizer), by FlopCounterMode, with
    the convolution backward counted per group (:func:`_conv_backward_flops`)."""
    from torch.utils.flop_counter import FlopCounterMode

    aten = torch.ops.aten
    counter = FlopCounterMode(
        display=False, custom_mapping={aten.convolution_backward: _conv_backward_flops}
    )
    with counter:
        step()
    return int(counter.get_total_flops())


def _batch(batch: int, resolution: int, vocab: int, device: torch.device):
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(
        0, 256, (batch, 3, resolution, resolution), dtype=torch.uint8, generator=gen
    )
    labels = torch.randint(0, vocab, (batch, 4), generator=gen).int()
    labels[:, 2:] = -1  # two hashtags per image, padded with -1 (the batch contract)
    return images.to(device), labels.to(device)


def measure_model(cfg, batch: int, compile_: bool, args, device: torch.device) -> dict:
    """One (batch, compile) configuration: images/s, FLOPs per step, peak memory."""
    from experiments.benchmarks.train import _step_fn
    from lightning_modules.backbones import build_resnext

    torch.manual_seed(0)
    net = build_resnext(cfg, args.vocab).to(device).to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    images, labels = _batch(batch, args.resolution, args.vocab, device)
    flops = training_flops(_step_fn(net, optimizer, images, labels, device, True, True))
    run_net = torch.compile(net) if compile_ else net
    step = _step_fn(run_net, optimizer, images, labels, device, True, True)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for _ in range(args.warmup):
        step()
    _sync(device)
    warmup_s = time.perf_counter() - start  # includes the compile
    start = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    _sync(device)
    elapsed = time.perf_counter() - start
    result = {
        "batch": batch,
        "compile": compile_,
        "images_per_s": round(batch * args.steps / elapsed, 1),
        "s_per_step": round(elapsed / args.steps, 5),
        "warmup_s": round(warmup_s, 1),
        "train_gflops_per_image": round(flops / batch / 1e9, 3),
        "achieved_tflops": round(flops * args.steps / elapsed / 1e12, 4),
        "final_loss": round(float(loss), 4),
    }
    if device.type == "cuda":
        result["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    return result


def measure_loader(args, device: torch.device, batch: int) -> dict:
    """HashtagDataModule's FFCV training loader into ``device`` memory, images/s."""
    from datamodules.pretrain import HashtagDataModule
    from experiments.benchmarks.loader import _prepare
    from experiments.config import DataConfig, LoadingConfig

    class OnDevice(HashtagDataModule):  # the placement a Trainer on ``device`` would give
        def _placement(self):
            return device, 0, 1

    folder, _ = _prepare(Path(args.cache_dir), args.loader_images, args.loader_size)
    cfg = DataConfig(
        loading=LoadingConfig(
            batch_size=batch,
            num_workers=args.loader_workers,
            resolution=args.resolution,
            sampling="natural",
        )
    )
    batches = OnDevice(cfg, seed=0, prepared_dir=folder).train_dataloader()
    rates, where = [], None
    for timed in [False] + [True] * args.loader_epochs:
        start, seen = time.perf_counter(), 0
        for images, _labels in batches:
            seen += len(images)
            where = images.device
        _sync(device)
        if timed:
            rates.append(seen / (time.perf_counter() - start))
    return {
        "batch": batch,
        "images_per_s": round(float(np.median(rates)), 1),
        "workers": args.loader_workers,
        "images": args.loader_images,
        "stored_px": args.loader_size,
        "into": str(where),
    }


def bound(loader_ips: float | None, model_ips: float) -> str:
    if loader_ips is None:
        return "unknown (loader not measured)"
    return "loader" if loader_ips < model_ips else "model"


def run(args: argparse.Namespace) -> dict:
    started = time.perf_counter()
    device = resolve_device(args.device)
    batches = parse_batches(args.batches)
    cfg = model_config(args.model)
    if args.steps < 1 or args.warmup < 0:
        raise UserInputError("--steps must be >= 1 and --warmup >= 0")

    def over_budget() -> bool:
        return bool(args.budget_s) and time.perf_counter() - started > args.budget_s

    result: dict = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "model": cfg.name,
        "resolution": args.resolution,
        "vocab": args.vocab,
        "precision": "bf16 autocast, channels_last",
        "peak_bf16_tflops": args.peak_tflops,
        "peak_source": "H200 SXM datasheet, dense"
        if args.peak_tflops == H200_PEAK_BF16_TFLOPS
        else "--peak-tflops",
        "mfu": "on a CUDA device only (a GPU's bf16 peak means nothing for a CPU)",
        "skipped": [],
    }
    if device.type == "cuda":
        result["matmul_tflops"] = round(matmul_tflops(device), 1)

    loaders: dict[int, float] = {}
    if args.skip_loader:
        result["skipped"].append("loader (--skip-loader)")
    else:
        result["loader"] = []
        for batch in batches:
            if over_budget():
                result["skipped"].append(f"loader batch {batch} (budget)")
                continue
            try:
                row = measure_loader(args, device, batch)
            except ImportError as exc:  # FFCV not installed on this machine
                result["skipped"].append(f"loader: {exc}")
                break
            loaders[batch] = row["images_per_s"]
            result["loader"].append(row)

    result["train"] = []
    for batch in batches:
        for compile_ in COMPILE_CHOICES[args.compile]:
            if over_budget():
                result["skipped"].append(f"train batch {batch} compile={compile_} (budget)")
                continue
            row = measure_model(cfg, batch, compile_, args, device)
            achieved = row["achieved_tflops"]
            row["mfu"] = round(achieved / args.peak_tflops, 4) if device.type == "cuda" else None
            if "matmul_tflops" in result:
                row["mfu_vs_matmul"] = round(achieved / result["matmul_tflops"], 4)
            row["bound"] = bound(loaders.get(batch), row["images_per_s"])
            result["train"].append(row)
            if device.type == "cuda":
                torch.cuda.empty_cache()
    result["wall_s"] = round(time.perf_counter() - started, 1)
    return result
