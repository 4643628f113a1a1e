"""`bench train --pipeline`: the real training step through HashtagDataModule vs in-memory tensors.

Both runs use the same Lightning Trainer settings, the same HashtagPretrainer (same config, same
initial weights) and the same batch shapes; one reads a prepared folder through FFCV
(HashtagDataModule: resampling, crops, flips, label noise, DDP placement), the other iterates
uint8 tensors already in memory. The ratio (pipeline / in-memory images/s, measured side by side
in one process) says whether the loader or the bookkeeping bounds the step: 1.0 means the
model alone does.
"""

from __future__ import annotations

import time
from typing import Any

import torch


class StepTimer:
    """A Lightning callback: wall time of training steps ``warmup .. warmup + steps``."""

    def __new__(cls, warmup: int):
        import lightning as L

        class _Timer(L.Callback):
            def __init__(self):
                self.warmup, self.start, self.end, self.steps = warmup, None, None, 0

            def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
                if trainer.global_step == self.warmup and self.start is None:
                    self.start = time.perf_counter()

            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
                if self.start is not None:
                    self.steps += 1
                    self.end = time.perf_counter()

        return _Timer()


def _trainer(cfg, max_steps: int, timer):
    import lightning as L

    from experiments.pretrain import resolve_precision

    return L.Trainer(
        accelerator=cfg.trainer.accelerator,
        devices=1,
        precision=resolve_precision(cfg.trainer),
        max_steps=max_steps,
        max_epochs=-1,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
    )


def _rate(cfg, dm_or_loader, vocab: int, hashtags, num_train: int, warmup: int, steps: int):
    from experiments.config import to_dict
    from lightning_modules.pretrain import HashtagPretrainer

    torch.manual_seed(cfg.seed)
    model = HashtagPretrainer(to_dict(cfg), vocab, hashtags, num_train=num_train)
    timer = StepTimer(warmup)
    trainer = _trainer(cfg, warmup + steps, timer)
    if hasattr(dm_or_loader, "train_dataloader") and hasattr(dm_or_loader, "setup"):
        trainer.fit(model, datamodule=dm_or_loader)
    else:
        trainer.fit(model, train_dataloaders=dm_or_loader)
    if timer.start is None or timer.steps == 0:
        raise RuntimeError("bench train --pipeline: no timed steps ran (raise --pipeline-steps)")
    elapsed = timer.end - timer.start
    return round(timer.steps * cfg.data.loading.batch_size / elapsed, 2), timer.steps


def run_pipeline(config: str, overrides: list[str], warmup: int, steps: int) -> dict[str, Any]:
    from torch.utils.data import DataLoader, TensorDataset

    from datamodules.pretrain import HashtagDataModule
    from experiments.config import load_config

    cfg = load_config(config, overrides)
    dm = HashtagDataModule(cfg.data, cfg.seed)
    dm.prepare_data()
    dm.setup("fit")
    batch, res = int(cfg.data.loading.batch_size), int(cfg.data.loading.resolution)
    common = (dm.vocab_size, list(dm.hashtags), int(dm.num_train), warmup, steps)
    real, timed = _rate(cfg, dm, *common)
    # in memory: as many distinct batches as the timed run read, labels shaped like the .beton's
    n = batch * (warmup + steps)
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, res, res), dtype=torch.uint8, generator=gen)
    labels = torch.full((n, int(dm.max_labels)), -1, dtype=torch.int32)
    labels[:, :2] = torch.randint(0, int(dm.vocab_size), (n, 2), generator=gen).int()
    loader = DataLoader(TensorDataset(images, labels), batch_size=batch, shuffle=False)
    memory, _ = _rate(cfg, loader, *common)
    return {
        "config": config,
        "overrides": list(overrides),
        "prepared": str(dm.prepared_dir),
        "batch": batch,
        "resolution": res,
        "threads": torch.get_num_threads(),
        "timed_steps": timed,
        "pipeline_images_per_s": real,
        "in_memory_images_per_s": memory,
        "ratio": round(real / memory, 3),
    }
