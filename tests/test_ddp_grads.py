"""2-process DDP (gloo, CPU) gradients equal 1-process gradients on the same global batch.

Batch norm keeps per-device statistics (no SyncBN, as in the paper), so in training mode two
ranks normalising their own halves of a batch legitimately differ from one process normalising
the whole batch. The check therefore runs BN in eval mode (a fixed affine map): what remains is
exactly what DDP must get right, the gradient all-reduce (mean over ranks) of a loss that is a
mean over each rank's labelled images.
"""

import os
import tempfile

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

from lightning_modules.backbones import build_resnext, normalize_images
from lightning_modules.losses import multilabel_softmax_loss
from tests.test_backbones import TINY

GLOBAL_BATCH = 8


def _setup(seed: int = 0):
    torch.manual_seed(seed)
    net = build_resnext(TINY, num_classes=16)
    # zero-init residual gammas would make most gradients zero; give every weight a gradient
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            torch.nn.init.uniform_(module.weight, 0.5, 1.5)
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    gen = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (GLOBAL_BATCH, 3, 8, 8), dtype=torch.uint8, generator=gen)
    labels = torch.full((GLOBAL_BATCH, 3), -1, dtype=torch.int32)
    for i in range(GLOBAL_BATCH):  # 1..3 labels each, padded with -1
        k = 1 + i % 3
        labels[i, :k] = torch.randperm(16, generator=gen)[:k].int()
    return net.eval(), images, labels


def _grads(net):
    return {n: p.grad.detach().clone() for n, p in net.named_parameters()}


def _worker(rank: int, world: int, init_file: str, out_file: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    net, images, labels = _setup()
    ddp = DistributedDataParallel(net)
    per_rank = GLOBAL_BATCH // world
    part = slice(rank * per_rank, (rank + 1) * per_rank)
    loss = multilabel_softmax_loss(ddp(normalize_images(images[part])), labels[part])
    loss.backward()
    if rank == 0:
        torch.save(_grads(net), out_file)
    dist.barrier()
    dist.destroy_process_group()


def test_two_process_ddp_gradients_match_single_process():
    net, images, labels = _setup()
    assert bool((labels >= 0).any(dim=1).all())  # every image labelled: the two means agree
    multilabel_softmax_loss(net(normalize_images(images)), labels).backward()
    reference = _grads(net)

    with tempfile.TemporaryDirectory() as tmp:
        init_file, out_file = os.path.join(tmp, "init"), os.path.join(tmp, "grads.pt")
        mp.spawn(_worker, args=(2, init_file, out_file), nprocs=2, join=True)
        ddp_grads = torch.load(out_file, weights_only=True)

    assert ddp_grads.keys() == reference.keys()
    assert sum(float(g.abs().sum()) for g in reference.values()) > 0
    for name, grad in reference.items():
        torch.testing.assert_close(ddp_grads[name], grad, atol=1e-5, rtol=1e-4, msg=name)
