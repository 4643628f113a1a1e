"""A seconds-long hashtag pretraining on the real synthetic world, in memory (tests only).

:class:`SyntheticTagsDataModule` renders the synthetic corpus's first records (the same images
``open_source`` gives for ``data.source.name=synthetic``) and turns their raw hashtags into labels
with a plain vocabulary (tags seen ``min_count`` times, the world's non-visual noise tags
dropped), then serves HashtagDataModule's batch contract through ``FakeHashtagDataModule``'s
loaders: ``run_pretrain`` trains a HashtagPretrainer (multi-label softmax) on it. This skips
the FFCV preparation (minutes) so the transfer test can afford a real pretraining.
"""

from __future__ import annotations

from collections import Counter

import lightning as L
import numpy as np
import torch

from datamodules.sources import SYNTHETIC_CORPUS_SEED
from datamodules.sources.synthetic import get_world, noise_words
from tests.fake_data import FakeHashtagDataModule


class SyntheticTagsDataModule(FakeHashtagDataModule):
    def __init__(
        self,
        *,
        num_train: int,
        num_val: int,
        image_size: int,
        batch_size: int,
        max_labels: int = 4,
        min_count: int = 5,
        seed: int = 0,
    ):
        L.LightningDataModule.__init__(self)
        world = get_world(300, 1.0, image_size)
        noise = set(noise_words())
        records = [world.record(SYNTHETIC_CORPUS_SEED, i) for i in range(2 * (num_train + num_val))]
        counts = Counter(t for r in records for t in set(r.tags) if t not in noise)
        self.hashtags = sorted(t for t, c in counts.items() if c >= min_count)
        index = {t: i for i, t in enumerate(self.hashtags)}
        images, labels = [], []
        for rec in records:  # images with no kept hashtag carry no training signal: skipped
            ids = sorted({index[t] for t in rec.tags if t in index})[:max_labels]
            if ids:
                images.append(rec.pixels)
                labels.append(ids + [-1] * (max_labels - len(ids)))
            if len(images) == num_train + num_val:
                break
        images_t = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
        labels_t = torch.tensor(labels, dtype=torch.int32)
        self.vocab_size = len(self.hashtags)
        self.num_train = num_train
        self.batch_size = batch_size
        self.seed = seed
        self.train_images, self.train_labels = images_t[:num_train], labels_t[:num_train]
        self.val_images, self.val_labels = images_t[num_train:], labels_t[num_train:]
        self.hashtag_counts = torch.bincount(
            self.train_labels[self.train_labels >= 0].long(), minlength=self.vocab_size
        ).tolist()
        self.batches_per_epoch = num_train // batch_size
        self.epoch = 0
        self.position = 0
