"""`python -m experiments bench train`: training throughput (images/s), and MFU on a GPU.

``--pipeline [CONFIG]`` instead trains through HashtagDataModule on a real prepared folder and
prints it beside the same model on in-memory tensors (:mod:`.train_pipeline`).

Times full optimizer steps (normalise uint8 -> forward -> multi-label softmax -> backward ->
SGD) on synthetic in-memory batches, so the figure is the model's, not the loader's. CPU: the
tiny model (configs/model/rx-tiny.yaml) at --cpu-resolution. GPU: ResNeXt-101 32x8d at 224 px,
bf16 autocast, channels_last; FLOPs per image are counted once with
``torch.utils.flop_counter.FlopCounterMode`` (forward + backward) and MFU = achieved FLOP/s /
the device's peak dense bf16 FLOP/s (table below, or --peak-tflops).
"""

from __future__ import annotations

import argparse
import time

import torch
from tqdm import tqdm

# peak dense bf16 tensor-core TFLOP/s per device (vendor datasheets, no sparsity)
PEAK_BF16_TFLOPS = {
    "H200": 989.0,
    "H100": 989.0,  # SXM; PCIe is 756
    "A100": 312.0,
    "A10G": 70.0,
    "L40S": 362.0,
    "L4": 121.0,
    "B200": 2250.0,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--steps", type=int, default=10, help="timed steps (after warm-up)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--vocab", type=int, default=1000, help="head width (hashtags)")
    parser.add_argument("--cpu-batch", type=int, default=32)
    parser.add_argument("--cpu-resolution", type=int, default=32)
    parser.add_argument("--cpu-model", default="configs/model/rx-tiny.yaml")
    parser.add_argument("--gpu-batch", type=int, default=64)
    parser.add_argument("--gpu-model", default="configs/model/rx101_32x8d.yaml")
    parser.add_argument("--compile", action="store_true", help="torch.compile on the GPU")
    parser.add_argument("--peak-tflops", type=float, default=0.0, help="override the peak table")
    parser.add_argument(
        "--pipeline",
        nargs="?",
        const="configs/pretrain/quickstart_openclipart.yaml",
        default=None,
        metavar="CONFIG",
        help="instead: train through HashtagDataModule on CONFIG's prepared folder (default: "
        "the quickstart's) beside the same model on in-memory tensors, in one run",
    )
    parser.add_argument("--pipeline-warmup", type=int, default=10, help="untimed steps first")
    parser.add_argument("--pipeline-steps", type=int, default=60, help="timed steps")
    parser.add_argument("overrides", nargs="*", help="--pipeline: config overrides (k=v)")


def _model_cfg(path: str):
    from experiments.config import load_config

    return load_config(path).model


def _peak_tflops(override: float) -> tuple[float, str]:
    if override:
        return override, "--peak-tflops"
    name = torch.cuda.get_device_name()
    for key, value in PEAK_BF16_TFLOPS.items():
        if key in name:
            return value, name
    return 0.0, f"{name} (not in the table: pass --peak-tflops)"


def _step_fn(net, optimizer, images, labels, device, bf16: bool, channels_last: bool):
    from lightning_modules.backbones import normalize_images
    from lightning_modules.losses import multilabel_softmax_loss

    def step():
        x = normalize_images(images, channels_last=channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = net(x)
        loss = multilabel_softmax_loss(logits, labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    return step


def _count_flops(step) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        step()
    return counter.get_total_flops()


def _measure(model_path, batch, resolution, vocab, device, steps, warmup, bf16, compile_):
    from lightning_modules.backbones import build_resnext

    cfg = _model_cfg(model_path)
    net = build_resnext(cfg, vocab).to(device)
    channels_last = device.type == "cuda"
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(
        0, 256, (batch, 3, resolution, resolution), dtype=torch.uint8, generator=gen
    )
    labels = torch.randint(0, vocab, (batch, 4), generator=gen).int()
    labels[:, 2:] = -1
    images, labels = images.to(device), labels.to(device)
    flops = _count_flops(_step_fn(net, optimizer, images, labels, device, bf16, False))
    run_net = torch.compile(net) if compile_ else net
    step = _step_fn(run_net, optimizer, images, labels, device, bf16, channels_last)
    for _ in range(warmup):
        step()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    for _ in tqdm(range(steps), desc=f"bench train {cfg.name}", leave=False):
        step()
    sync()
    elapsed = time.perf_counter() - start
    return {
        "model": cfg.name,
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "batch": batch,
        "resolution": resolution,
        "vocab": vocab,
        "precision": "bf16-mixed" if bf16 else "32-true",
        "images_per_s": round(batch * steps / elapsed, 2),
        "s_per_step": round(elapsed / steps, 4),
        "train_flops_per_image": round(flops / batch),
        "params": sum(p.numel() for p in net.parameters()),
    }


def run(args: argparse.Namespace) -> dict:
    if args.pipeline:
        from experiments.benchmarks.train_pipeline import run_pipeline

        return run_pipeline(
            args.pipeline, list(args.overrides), args.pipeline_warmup, args.pipeline_steps
        )
    result = {
        "cpu": _measure(
            args.cpu_model,
            args.cpu_batch,
            args.cpu_resolution,
            args.vocab,
            torch.device("cpu"),
            args.steps,
            args.warmup,
            False,
            False,
        )
    }
    if torch.cuda.is_available():
        gpu = _measure(
            args.gpu_model,
            args.gpu_batch,
            224,
            args.vocab,
            torch.device("cuda"),
            args.steps,
            args.warmup,
            True,
            args.compile,
        )
        peak, source = _peak_tflops(args.peak_tflops)
        achieved = gpu["train_flops_per_image"] * gpu["images_per_s"]
        gpu["achieved_tflops"] = round(achieved / 1e12, 2)
        gpu["peak_bf16_tflops"] = peak
        gpu["peak_source"] = source
        gpu["mfu"] = round(achieved / (peak * 1e12), 4) if peak else None
        result["gpu"] = gpu
    else:
        result["gpu"] = "no CUDA device: run on a GPU machine for ResNeXt-101 32x8d at 224 px"
    return result
