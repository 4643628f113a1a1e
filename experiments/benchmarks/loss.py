"""`python -m experiments bench loss`: the sparse multi-label softmax vs alternatives.

Forward + backward time and peak memory of the loss alone at V hashtags and batch B (paper:
V=17,000, B=256 per device) for (1) plain ``F.cross_entropy`` on one label per image, (2) this
project's sparse multi-label softmax from padded ids, (3) the dense formulation that builds a
B x V target. Peak memory: ``torch.cuda.max_memory_allocated`` above the inputs on a GPU; on
the CPU the peak of live tensors during the step from PyTorch's MemTracker (which counts the
input logits too: 17 MB at the defaults). Times are medians, the methods interleaved.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from tqdm import tqdm

METHODS = ("cross_entropy_single", "multilabel_softmax_sparse", "dense_soft_target")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--vocab", type=int, default=17000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--labels", type=int, default=8, help="label width W (padded)")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--device", default="auto", help="cpu | cuda | auto")


def _inputs(vocab: int, batch: int, width: int, device: str):
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(batch, vocab, generator=gen)
    labels = torch.full((batch, width), -1, dtype=torch.int32)
    counts = torch.randint(1, 4, (batch,), generator=gen)  # ~2 hashtags per image, as in the paper
    for i, k in enumerate(counts.tolist()):
        labels[i, :k] = torch.randperm(vocab, generator=gen)[:k].int()
    return logits.to(device), labels.to(device)


def _loss_fn(method: str):
    from lightning_modules.losses import dense_soft_target_loss, multilabel_softmax_loss

    if method == "cross_entropy_single":
        return lambda z, y: F.cross_entropy(z, y[:, 0].long())
    if method == "multilabel_softmax_sparse":
        return multilabel_softmax_loss
    return dense_soft_target_loss


def _step(fn, logits, labels):
    z = logits.detach().requires_grad_(True)
    fn(z, labels).backward()


def _times(vocab, batch, width, repeats, device) -> dict[str, float]:
    """Median forward+backward ms per method; methods interleaved so load noise hits all alike."""
    logits, labels = _inputs(vocab, batch, width, device)
    fns = {m: _loss_fn(m) for m in METHODS}
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    for fn in fns.values():  # warm-up
        _step(fn, logits, labels)
    times: dict[str, list[float]] = {m: [] for m in METHODS}
    for _ in tqdm(range(repeats), desc="bench loss", leave=False):
        for method, fn in fns.items():
            sync()
            start = time.perf_counter()
            _step(fn, logits, labels)
            sync()
            times[method].append(time.perf_counter() - start)
    return {m: round(1000 * sorted(t)[len(t) // 2], 3) for m, t in times.items()}


def _peak_mb(method, vocab, batch, width, device) -> float:
    """Peak tensor memory of one forward+backward above the inputs, in MiB."""
    logits, labels = _inputs(vocab, batch, width, device)
    fn = _loss_fn(method)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        _step(fn, logits, labels)
        torch.cuda.synchronize()
        return round((torch.cuda.max_memory_allocated() - base) / 2**20, 2)
    # CPU: PyTorch's tensor-level tracker (torch.distributed._tools, a private but shipped tool)
    from torch.distributed._tools.mem_tracker import MemTracker

    tracker = MemTracker()
    with tracker:
        _step(fn, logits, labels)
    return round(tracker.get_tracker_snapshot("peak")[torch.device("cpu")]["Total"] / 2**20, 2)


def run(args: argparse.Namespace) -> dict:
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    ms = _times(args.vocab, args.batch, args.labels, args.repeats, device)
    results = {}
    for method in METHODS:
        peak = _peak_mb(method, args.vocab, args.batch, args.labels, device)
        results[method] = {"ms_median": ms[method], "peak_extra_mb": peak}
    ce = results["cross_entropy_single"]["ms_median"]
    sparse = results["multilabel_softmax_sparse"]["ms_median"]
    return {
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "vocab": args.vocab,
        "batch": args.batch,
        "label_width": args.labels,
        "methods": results,
        "sparse_over_cross_entropy_time": round(sparse / ce, 3),
        "dense_over_sparse_time": round(results["dense_soft_target"]["ms_median"] / sparse, 3),
        "target_time_ratio": 1.2,
    }
