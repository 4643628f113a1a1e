"""2-process DDP (gloo, CPU) gradients equal 1-process gradients on the same global batch.

Batch norm keeps per-device statistics (no SyncBN, as in the paper), so in training mode two
ranks normalising their own halves of a batch legitimately differ from one process normalising
the whole batch. The check therefore runs BN in eval mode (a fixed affine map): what remains is
exactly what DDP must get right, the gradient all-reduce (mean over ranks) of a loss that is a
mean over each rank's labelled images.
"""

import os
import tempfile

import pytest
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


# ---------------------------------------------------------------------------------------------
# The LightningModule under 2-rank DDP (Lightning's ddp_spawn, gloo): validation metrics are
# reduced over the ranks, and channels_last happens before DDP builds its gradient buckets.

STRIDE_WARNING = "Grad strides do not match bucket view strides"
SYNC_WARNING = "sync_dist=True"


def _pretrainer():
    from experiments.config import load_config, to_dict
    from lightning_modules.pretrain import HashtagPretrainer
    from tests.fake_data import tiny_overrides
    from tests.test_datamodule import NUM_TRAIN, V

    cfg = load_config(None, [*tiny_overrides("unused", "ddp"), "trainer.channels_last=true"])
    torch.manual_seed(0)
    return HashtagPretrainer(to_dict(cfg), V, num_train=NUM_TRAIN)


def _trainer(root, world: int, **kwargs):
    import lightning as L

    return L.Trainer(
        accelerator="cpu",
        devices=world,
        strategy="ddp_spawn" if world > 1 else "auto",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
        default_root_dir=str(root),
        **kwargs,
    )


@pytest.mark.slow
def test_two_rank_validation_equals_one_process_without_ddp_warnings(tmp_path, capfd):
    from datamodules.pretrain import HashtagDataModule
    from tests.test_datamodule import NUM_VAL, _Data, make_prepared

    prepared = make_prepared(tmp_path / "prepared")
    assert NUM_VAL % 2 == 0  # FFCV's distributed order pads an odd split with a repeat

    def validate(world: int) -> dict[str, float]:
        dm = HashtagDataModule(_Data(), seed=0, prepared_dir=prepared)
        (result,) = _trainer(tmp_path, world).validate(_pretrainer(), datamodule=dm)
        return result

    single = validate(1)
    capfd.readouterr()
    double = validate(2)
    assert set(double) == {"val/loss", "val/precision_at_1", "val/precision_at_5"}
    assert single["val/precision_at_1"] > 0  # some hits: the comparison is not 0 == 0
    for key, value in single.items():  # the same sums, added in another order
        assert double[key] == pytest.approx(value, rel=1e-6, abs=1e-7), key

    dm = HashtagDataModule(_Data(), seed=0, prepared_dir=prepared)
    _trainer(tmp_path, 2, max_steps=3, limit_val_batches=0).fit(_pretrainer(), datamodule=dm)
    logs = "".join(capfd.readouterr())
    assert STRIDE_WARNING not in logs and SYNC_WARNING not in logs, logs[-3000:]
