"""What scripts/gpu_check.sh runs, on the CPU (issue 15): bf16 autocast training steps, torch.compile
of a tiny model, the FLOP counter MFU is computed from (against an independent count), and the
benchmark's own argument handling end to end (``bench gpu --device cpu --model rx-tiny``).
The GPU figures themselves need a GPU machine; nothing here times anything."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch

from datamodules.errors import UserInputError
from experiments.__main__ import main
from experiments.benchmarks import gpu
from lightning_modules.backbones import build_resnext, normalize_images
from lightning_modules.losses import multilabel_softmax_loss

REPO = Path(__file__).resolve().parent.parent
VOCAB = 20


def _tiny(seed: int = 0):
    torch.manual_seed(seed)
    return build_resnext(gpu.model_config("rx-tiny"), VOCAB)


def _batch(n: int = 4, size: int = 32):
    gen = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=gen)
    labels = torch.full((n, 3), -1, dtype=torch.int32)
    labels[:, 0] = torch.arange(n) % VOCAB
    labels[::2, 1] = (torch.arange(0, n, 2) + 7) % VOCAB
    return images, labels


def _loss_and_grads(net, images, labels, bf16: bool):
    net.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        logits = net(normalize_images(images, channels_last=True))
    loss = multilabel_softmax_loss(logits, labels)
    loss.backward()
    return logits, loss, {n: p.grad.clone() for n, p in net.named_parameters()}


def test_bf16_autocast_forward_backward_tracks_fp32():
    # batch norm in eval mode (a fixed affine map): in training mode its batch statistics over
    # a few images amplify bf16's rounding, which says nothing about the autocast path
    net = _tiny().to(memory_format=torch.channels_last).eval()
    images, labels = _batch(n=16)
    logits16, loss16, grads16 = _loss_and_grads(net, images, labels, bf16=True)
    logits32, loss32, grads32 = _loss_and_grads(net, images, labels, bf16=False)
    assert logits16.dtype == torch.bfloat16 and logits32.dtype == torch.float32
    assert loss16.dtype == torch.float32  # the loss is computed in fp32 from bf16 logits
    assert float(loss16.detach()) == pytest.approx(float(loss32.detach()), rel=0.01)
    for name, g16 in grads16.items():  # parameters and their gradients stay fp32
        assert g16.dtype == torch.float32 and bool(torch.isfinite(g16).all()), name
    flat16 = torch.cat([g.flatten() for g in grads16.values()])
    flat32 = torch.cat([g.flatten() for g in grads32.values()])
    # bf16 keeps 8 bits of mantissa: measured here 6.8% relative error, cosine 0.998
    assert float((flat16 - flat32).norm() / flat32.norm()) < 0.15
    assert float(torch.nn.functional.cosine_similarity(flat16, flat32, dim=0)) > 0.99


@pytest.mark.slow
def test_torch_compile_of_a_tiny_model_matches_eager():
    """The training step bench gpu compiles (train mode, forward and backward): the compiled
    loss and every gradient equal eager's. One compilation: inductor on the CPU takes a minute."""
    net = _tiny().train()
    compiled = torch.compile(net)
    images, labels = _batch()
    eager_loss, eager_grads = None, None
    for model in (net, compiled):
        net.zero_grad(set_to_none=True)
        torch.manual_seed(0)
        loss = multilabel_softmax_loss(model(normalize_images(images)), labels)
        loss.backward()
        grads = {n: p.grad.clone() for n, p in net.named_parameters()}
        if eager_loss is None:
            eager_loss, eager_grads = loss.detach(), grads
    torch.testing.assert_close(loss.detach(), eager_loss, atol=1e-4, rtol=1e-4)
    for name, grad in grads.items():
        torch.testing.assert_close(grad, eager_grads[name], atol=1e-4, rtol=1e-3, msg=name)


def _layer_flops(net, x) -> tuple[int, int]:
    """Forward FLOPs of every conv and linear layer by hand (2 per multiply-add), and the
    first conv's (whose input needs no gradient, so its backward has no input-gradient term)."""
    found: list[int] = []

    def hook(module, inputs, output):
        if isinstance(module, torch.nn.Conv2d):
            c_out, c_in_per_group, kh, kw = module.weight.shape
            n, _, h, w = output.shape
            found.append(2 * n * c_out * c_in_per_group * kh * kw * h * w)
        else:
            found.append(2 * inputs[0].shape[0] * module.in_features * module.out_features)

    layers = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.Linear)]
    handles = [m.register_forward_hook(hook) for m in layers]
    with torch.no_grad():
        net(x)
    for handle in handles:
        handle.remove()
    assert len(found) == len(layers)
    return sum(found), found[0]


def test_flop_counter_equals_an_independent_count_on_rx_tiny():
    from experiments.benchmarks.train import _step_fn

    net = _tiny()
    images, labels = _batch(n=8, size=64)
    forward, first_conv = _layer_flops(net, normalize_images(images))
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01)
    counted = gpu.training_flops(
        _step_fn(net, optimizer, images, labels, torch.device("cpu"), False, False)
    )
    # backward: grad input + grad weight for every layer (2x forward), but no grad input
    # for the first conv; normalisation, batch norm, ReLU and the loss are not counted
    assert counted == 3 * forward - first_conv
    # torch's stock formula counts a grouped conv's weight gradient once per group
    from torch.utils.flop_counter import FlopCounterMode

    stock = FlopCounterMode(display=False)
    with stock:
        _step_fn(net, optimizer, images, labels, torch.device("cpu"), False, False)()
    grouped = sum(m.groups > 1 for m in net.modules() if isinstance(m, torch.nn.Conv2d))
    assert grouped > 0 and stock.get_total_flops() > counted
    assert forward // 8 == 48_209_920  # rx-tiny at 64 px, 20 classes: FLOPs per image forward


def test_argument_handling():
    assert gpu.parse_batches("24,64") == [24, 64]
    for bad in ("", "a,4", "0", "-3"):
        with pytest.raises(UserInputError, match="--batches"):
            gpu.parse_batches(bad)
    with pytest.raises(UserInputError, match="--device='tpu'"):
        gpu.resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(UserInputError, match="no CUDA device here; use --device cpu"):
            gpu.resolve_device("cuda")
    with pytest.raises(UserInputError, match="--model='rx9000'"):
        gpu.model_config("rx9000")
    assert gpu.bound(100.0, 200.0) == "loader" and gpu.bound(300.0, 200.0) == "model"
    assert gpu.bound(None, 200.0).startswith("unknown")


def test_bench_gpu_on_the_cpu_end_to_end(tmp_path, capsys):
    out = tmp_path / "gpu.json"
    args = ["bench", "gpu", "--device", "cpu", "--model", "rx-tiny", "--steps", "2"]
    args += ["--warmup", "1", "--batches", "4,8", "--resolution", "32", "--vocab", "50"]
    args += ["--compile", "off", "--loader-images", "32", "--loader-size", "48"]
    args += ["--loader-workers", "1", "--loader-epochs", "1", "--cache-dir", str(tmp_path)]
    assert main([*args, "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["device"] == "cpu" and result["model"] == "rx-tiny"
    assert result["peak_bf16_tflops"] == gpu.H200_PEAK_BF16_TFLOPS == 989.0
    assert [(r["batch"], r["into"]) for r in result["loader"]] == [(4, "cpu"), (8, "cpu")]
    assert [(r["batch"], r["compile"]) for r in result["train"]] == [(4, False), (8, False)]
    for row in result["train"]:
        assert row["images_per_s"] > 0 and row["train_gflops_per_image"] > 0
        assert row["mfu"] is None and row["bound"] in ("loader", "model")
    assert result["skipped"] == []
    assert main([*args[:2], "--device", "cpu", "--batches", "x", "--out", str(out)]) == 2
    assert "error: --batches='x'" in capsys.readouterr().err


def test_gpu_check_script_refuses_a_machine_without_cuda():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: run scripts/gpu_check.sh itself")
    script = REPO / "scripts" / "gpu_check.sh"
    assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0
    proc = subprocess.run(
        ["bash", str(script)], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 1
    assert "gpu_check: no CUDA device" in proc.stdout + proc.stderr
