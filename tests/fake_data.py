"""An in-memory LightningDataModule with HashtagDataModule's batch contract (tests only).

Images carry a label-dependent signal (each hashtag has a colour pattern; an image mixes the
patterns of its hashtags plus noise), so a tiny network learns them within a few hundred steps.
Like the real datamodule, ``state_dict()`` holds the epoch and the number of training batches
consumed, and a resumed loader skips exactly those: counting happens in
``on_after_batch_transfer`` (the batch that reaches ``training_step``), not when the loader
yields, because Lightning prefetches one batch ahead.
"""

from __future__ import annotations

import lightning as L
import numpy as np
import torch


def make_tagged_images(num: int, vocab_size: int, image_size: int, max_labels: int, seed: int):
    """uint8 images [N,3,S,S] and int32 labels [N,max_labels] (-1 padded, 1..3 labels each)."""
    rng = np.random.default_rng(seed)
    patterns = rng.uniform(0, 255, size=(vocab_size, 3, 4, 4))
    labels = np.full((num, max_labels), -1, dtype=np.int32)
    images = np.empty((num, 3, image_size, image_size), dtype=np.uint8)
    reps = image_size // 4
    for i in range(num):
        k = int(rng.integers(1, min(3, max_labels) + 1))
        ids = np.sort(rng.choice(vocab_size, size=k, replace=False))
        labels[i, :k] = ids
        mix = patterns[ids].mean(axis=0)
        img = np.kron(mix, np.ones((reps, reps))) + rng.normal(0, 20, (3, image_size, image_size))
        images[i] = np.clip(img, 0, 255).astype(np.uint8)
    return torch.from_numpy(images), torch.from_numpy(labels)


class _EpochLoader:
    """Iterates the datamodule's current epoch from its current position, in fixed batches."""

    def __init__(self, dm: FakeHashtagDataModule):
        self.dm = dm

    def __len__(self) -> int:
        return self.dm.batches_per_epoch

    def __iter__(self):
        dm = self.dm
        order = torch.randperm(
            dm.num_train, generator=torch.Generator().manual_seed(dm.seed * 1000 + dm.epoch)
        )
        bs = dm.batch_size
        for b in range(dm.position, dm.batches_per_epoch):
            idx = order[b * bs : (b + 1) * bs]
            yield dm.train_images[idx], dm.train_labels[idx]


class _ValLoader:
    def __init__(self, dm: FakeHashtagDataModule):
        self.dm = dm

    def __len__(self) -> int:
        return -(-len(self.dm.val_images) // self.dm.batch_size)

    def __iter__(self):
        bs = self.dm.batch_size
        for i in range(0, len(self.dm.val_images), bs):
            yield self.dm.val_images[i : i + bs], self.dm.val_labels[i : i + bs]


class FakeHashtagDataModule(L.LightningDataModule):
    def __init__(
        self,
        *,
        vocab_size=16,
        num_train=512,
        num_val=128,
        image_size=16,
        batch_size=32,
        max_labels=4,
        seed=0,
    ):
        super().__init__()
        self.vocab_size = vocab_size
        self.num_train = num_train
        self.batch_size = batch_size
        self.seed = seed
        self.hashtags = [f"tag{i}" for i in range(vocab_size)]
        images, labels = make_tagged_images(
            num_train + num_val, vocab_size, image_size, max_labels, seed
        )
        self.train_images, self.train_labels = images[:num_train], labels[:num_train]
        self.val_images, self.val_labels = images[num_train:], labels[num_train:]
        self.hashtag_counts = torch.bincount(
            self.train_labels[self.train_labels >= 0].long(), minlength=vocab_size
        ).tolist()
        self.batches_per_epoch = num_train // batch_size  # drop_last
        self.epoch = 0
        self.position = 0

    def train_dataloader(self):
        return _EpochLoader(self)

    def val_dataloader(self):
        return _ValLoader(self)

    def on_after_batch_transfer(self, batch, dataloader_idx):
        if self.trainer is not None and self.trainer.training:
            self.position += 1
            if self.position >= self.batches_per_epoch:
                self.epoch, self.position = self.epoch + 1, 0
        return batch

    def state_dict(self):
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state):
        self.epoch, self.position = int(state["epoch"]), int(state["position"])


def tiny_overrides(runs_dir, name: str, images_seen: int = 3200, every: int = 20) -> list[str]:
    """Overrides for a seconds-long CPU pretraining run on :class:`FakeHashtagDataModule`."""
    return [
        f"runs_dir={runs_dir}",
        f"name={name}",
        "logging.wandb=false",
        "model.layers=[1,1,1,1]",
        "model.groups=2",
        "model.width_per_group=4",
        "model.stem_width=8",
        "data.loading.batch_size=32",
        f"schedule.images_seen={images_seen}",
        "schedule.warmup_images=320",
        f"trainer.checkpoint_every_n_steps={every}",
        "trainer.accelerator=cpu",
        "trainer.deterministic=true",
        "optim.base_lr=0.4",
    ]


def fake_datamodule(seed: int = 0) -> FakeHashtagDataModule:
    return FakeHashtagDataModule(
        vocab_size=16, num_train=512, num_val=128, image_size=8, batch_size=32, seed=seed
    )


def main(argv: list[str]) -> None:
    """``python -m tests.fake_data RUNS_DIR NAME IMAGES [override ...]``: one tiny pretraining run."""
    torch.set_num_threads(1)
    from experiments.config import load_config
    from experiments.pretrain import run_pretrain

    runs_dir, name, images = argv[0], argv[1], int(argv[2])
    cfg = load_config(None, [*tiny_overrides(runs_dir, name, images), *argv[3:]])
    run_pretrain(cfg, fake_datamodule(cfg.seed))


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
