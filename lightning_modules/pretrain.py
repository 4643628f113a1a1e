"""HashtagPretrainer: a ResNeXt trained to predict an image's hashtags (multi-label softmax).

Batches follow the datamodule contract: ``(images uint8 [B,3,H,W], labels int32 [B,W])`` with
labels padded by -1. Normalisation (ImageNet mean/std) happens here, on the device, and on a
GPU the network runs channels_last under bf16 autocast (the Trainer's precision plugin),
optionally through ``torch.compile``. Batch norm keeps per-device statistics (no SyncBN), as in
the paper's 336-GPU runs.

The whole run config is stored as a plain dict in ``hparams`` (with the vocabulary size and the
hashtag names), so ``HashtagPretrainer.load_from_checkpoint(path)`` rebuilds the network and
``experiments predict`` can name its outputs. The learning-rate schedule is derived from the
number of training images and the global batch the Trainer actually runs with.
"""

from __future__ import annotations

import random
import time
from typing import Any

import lightning as L
import numpy as np
import torch
from omegaconf import OmegaConf
from torchmetrics import MeanMetric

from datamodules.data_legacy import upgrade_config
from datamodules.errors import UserInputError
from lightning_modules.backbones import build_resnext, normalize_images
from lightning_modules.losses import get_loss, sigmoid_prior_bias
from lightning_modules.metrics import HashtagPrecisionAtK, precision_hits
from lightning_modules.optim import build_scheduler, build_sgd


def global_batch_size(batch_size: int, world_size: int, accumulate: int) -> int:
    """Images per optimizer step: per-device batch x devices x nodes x accumulation."""
    return int(batch_size) * int(world_size) * int(accumulate)


def per_device_batch(global_batch: int, world_size: int, accumulate: int) -> int:
    """``schedule.global_batch`` split over the processes and accumulation steps, exactly."""
    parts = int(world_size) * int(accumulate)
    if global_batch <= 0 or global_batch % parts:
        raise UserInputError(
            f"schedule.global_batch={global_batch} does not split over {world_size} processes x "
            f"schedule.accumulate={accumulate}: use a world size (torchrun --nnodes x "
            "--nproc_per_node, or SLURM tasks) that divides it, or set data.loading.batch_size instead"
        )
    return global_batch // parts


def _numpy_state_to_safe(state: tuple) -> tuple:
    """numpy's RNG state with the key array as a tensor (loadable with weights_only=True)."""
    name, keys, pos, has_gauss, cached = state
    return (name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached))


def _numpy_state_from_safe(state: tuple) -> tuple:
    name, keys, pos, has_gauss, cached = state
    return (name, keys.numpy().astype(np.uint32), pos, has_gauss, cached)


class HashtagPretrainer(L.LightningModule):
    def __init__(
        self,
        config: dict,
        vocab_size: int,
        hashtags: list[str] | None = None,
        num_train: int = 0,
    ):
        super().__init__()
        self.save_hyperparameters()
        # load_from_checkpoint of a checkpoint written before the data sections: a flat data dict
        self.cfg = OmegaConf.create(upgrade_config(config))
        self.net = build_resnext(self.cfg.model, vocab_size)
        self.loss_fn = get_loss(self.cfg.model.loss)
        # the head's initial bias, to tell at setup whether model.weights replaced it
        self._initial_bias = self.net.fc.bias.detach().clone()
        # torchmetrics Metrics, logged as such: Lightning reduces them over DDP ranks
        self.val_loss = MeanMetric()
        self.val_precision = torch.nn.ModuleDict(
            {f"precision_at_{k}": HashtagPrecisionAtK(k) for k in (1, 5)}
        )
        self.val_history: list[dict[str, float]] = []  # one entry per validation, survives resume
        self.schedule: dict[str, Any] = {}
        self.wall_s_before = 0.0  # training wall time of earlier (killed) attempts
        self._start_time = time.time()
        self._compiled = None

    # ---------------------------------------------------------------- setup
    @property
    def channels_last(self) -> bool:
        # channels_last pays on the CPU too (oneDNN convolutions): ~2-4x measured on rx-tiny
        return bool(self.cfg.trainer.channels_last)

    def setup(self, stage: str) -> None:
        if stage == "fit":
            self._init_sigmoid_prior()

    def sigmoid_prior(self) -> str:
        """``model.sigmoid_prior`` for the sigmoid loss ("none" for softmax and for configs
        written before the knob existed)."""
        if self.cfg.model.loss != "sigmoid":
            return "none"
        return str(self.cfg.model.get("sigmoid_prior", "none"))

    def _init_sigmoid_prior(self) -> None:
        """Sigmoid loss: the classifier bias starts at the prior logit (see
        :mod:`lightning_modules.losses`), from the datamodule's ``hashtag_counts`` over its
        ``num_train`` images. Runs in ``setup``, before Lightning restores a checkpoint (a
        resumed run keeps its trained bias); a head loaded from ``model.weights`` is kept."""
        prior = self.sigmoid_prior()
        if prior == "none" or self._initial_bias is None:
            return
        bias = self.net.fc.bias
        if not torch.equal(bias.detach().cpu(), self._initial_bias.cpu()):
            self._initial_bias = None  # loaded from model.weights
            return
        counts, num_train = None, 0
        if prior == "frequency":
            dm = getattr(self.trainer, "datamodule", None)
            counts = getattr(dm, "hashtag_counts", None)
            num_train = int(getattr(dm, "num_train", 0) or 0)
            if counts is None or not num_train:
                raise UserInputError(
                    "model.sigmoid_prior=frequency needs the datamodule's hashtag_counts and "
                    "num_train; use model.sigmoid_prior=uniform"
                )
            counts = torch.as_tensor(np.asarray(counts))
        else:
            counts = torch.zeros(bias.shape[0])
        if len(counts) != bias.shape[0]:
            raise UserInputError(
                f"{len(counts)} hashtag counts for a {bias.shape[0]}-class head: the datamodule "
                "and the model disagree on the vocabulary"
            )
        with torch.no_grad():
            bias.copy_(sigmoid_prior_bias(counts, num_train, prior).to(bias))
        self._initial_bias = None

    def optim_config(self):
        """``optim`` as the optimizer and schedule read it: with the sigmoid loss, ``base_lr``
        is multiplied by ``optim.sigmoid_lr_mult``."""
        optim = self.cfg.optim
        if self.cfg.model.loss != "sigmoid":
            return optim
        mult = float(optim.get("sigmoid_lr_mult", 1.0))
        return OmegaConf.merge(optim, {"base_lr": float(optim.base_lr) * mult})

    def configure_model(self) -> None:
        """channels_last before the strategy wraps the model: DDP builds its gradient buckets
        from the parameters' strides, and a later conversion makes every step copy gradients
        ("Grad strides do not match bucket view strides")."""
        if self.channels_last:
            self.net.to(memory_format=torch.channels_last)

    def on_fit_start(self) -> None:
        self._start_time = time.time()
        if self.cfg.trainer.compile and self.device.type == "cuda" and self._compiled is None:
            # kept outside the module tree so state-dict keys stay torchvision's
            object.__setattr__(self, "_compiled", torch.compile(self.net))

    def global_batch(self) -> int:
        trainer = self.trainer
        return global_batch_size(
            self.cfg.data.loading.batch_size, trainer.world_size, trainer.accumulate_grad_batches
        )

    def _num_train(self) -> int:
        if self.hparams.num_train:
            return int(self.hparams.num_train)
        datamodule = getattr(self.trainer, "datamodule", None)
        return int(getattr(datamodule, "num_train", 0) or 0)

    def configure_optimizers(self):
        global_batch = self.global_batch()
        optim_cfg = self.optim_config()
        optimizer = build_sgd(self.net, optim_cfg, global_batch)
        scheduler, self.schedule = build_scheduler(
            optimizer,
            self.cfg.schedule,
            optim_cfg,
            global_batch=global_batch,
            num_train=self._num_train(),
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1},
        }

    # ---------------------------------------------------------------- forward
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits [B, V] for uint8 images (normalised here) or already normalised floats."""
        if images.dtype == torch.uint8:
            images = normalize_images(images, channels_last=self.channels_last)
        net = self._compiled if (self._compiled is not None and self.training) else self.net
        return net(images)

    def images_seen(self) -> int:
        return int(self.trainer.global_step) * self.global_batch()

    def training_step(self, batch, batch_idx):
        images, labels = batch
        logits = self(images)
        loss = self.loss_fn(logits, labels)
        sums, count = precision_hits(logits.detach(), labels, (1, 5))
        precision = sums / count.clamp(min=1)
        batch_size = images.shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=batch_size)
        self.log("train/precision_at_1", precision[0], batch_size=batch_size)
        self.log("train/precision_at_5", precision[1], batch_size=batch_size)
        self.log("train/lr", self.optimizers().param_groups[0]["lr"], batch_size=batch_size)
        self.log("train/images_seen", float(self.images_seen()), batch_size=batch_size)
        return loss

    def validation_step(self, batch, batch_idx):
        images, labels = batch
        logits = self(images)
        loss = self.loss_fn(logits, labels)
        labelled = (labels >= 0).any(dim=1).sum()
        self.val_loss.update(loss.detach(), weight=labelled.clamp(min=1))
        for metric in self.val_precision.values():
            metric.update(logits, labels)

    def on_validation_epoch_end(self) -> None:
        metrics = {"loss": self.val_loss, **self.val_precision}
        # compute() syncs the states over all ranks (every rank gets the global value) and
        # caches it; Lightning logs that value and resets the metrics after the epoch
        values = {name: metric.compute() for name, metric in metrics.items()}
        for name, metric in metrics.items():
            self.log(f"val/{name}", metric)
        if self.trainer.sanity_checking or not self.trainer.training:
            return
        entry = {k: float(v) for k, v in values.items()}
        entry["images_seen"] = self.images_seen()
        entry["step"] = int(self.trainer.global_step)
        self.val_history.append(entry)

    # ---------------------------------------------------------------- checkpoints
    def wall_s(self) -> float:
        return self.wall_s_before + (time.time() - self._start_time)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["val_history"] = list(self.val_history)
        checkpoint["wall_s"] = self.wall_s()
        checkpoint["rng"] = {
            "torch": torch.get_rng_state(),
            "numpy": _numpy_state_to_safe(np.random.get_state()),
            "python": random.getstate(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.val_history = list(checkpoint.get("val_history", []))
        self.wall_s_before = float(checkpoint.get("wall_s", 0.0))
        self._start_time = time.time()
        rng = checkpoint.get("rng")
        if rng:
            torch.set_rng_state(rng["torch"])
            np.random.set_state(_numpy_state_from_safe(rng["numpy"]))
            random.setstate(rng["python"])
            if rng["cuda"] and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(rng["cuda"])
