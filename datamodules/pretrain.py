"""HashtagDataModule: batches of hashtag-labelled images from a prepared folder, via FFCV.

Batches are ``(images uint8 [B,3,H,W], labels int32 [B,max_labels])`` padded with -1 (images
on the GPU when the trainer has one; normalisation happens in the LightningModule). The batch
tensors live in FFCV's ring buffer: they stay valid for ``batches_ahead`` further batches, so
clone anything kept longer.

Epochs. Each training epoch is ``num_train`` images drawn by :mod:`datamodules.epoch_order`
(``data.loading.sampling``: a permutation for natural, weighted draws with replacement
otherwise), a pure function of (seed, epoch). Under DDP each rank reads every world_size-th draw
(disjoint, equal counts). Label noise (``data.loading.label_noise``) is applied to each batch at
load time from (seed, sample_id, slot), the same in every epoch, so one .beton serves every
noise level; the resampling weights come from the noisy labels (see
:mod:`datamodules.label_noise`). Random crops and flips are a counter-based hash of (seed,
epoch, sample_id) (:mod:`datamodules.ffcv_augment`): the same sample in the same epoch gets the
same crop and flip on any thread, worker or rank and after a resume, so on the CPU two runs of
one command with one seed and thread count see identical batches.

Loaders are built once per run (a new FFCV Loader spends ~10 s compiling) and reused across
epochs: the custom traversal order hands FFCV each epoch's draws when it asks.

Shards. A prepared folder may hold several train shards (``data.write.shard_size``); they are
checked against ``manifest.json`` (:func:`datamodules.shards.check_train_shards`) and read by
one FFCV Loader as one dataset (:mod:`datamodules.ffcv_shards`: the files mapped back to back,
compiled once), shard after shard in sample-id order, so global row r is sample id r. The
resampling, the rank split, the resume position and the crop/flip keys all work on that global
index, exactly as with one shard: a one-shard and a many-shard preparation of the same data give
the same draws, batches and crops.

Mid-epoch resume. :meth:`state_dict` returns ``{"epoch", "batches_done"}`` (batches whose
training step ran, from the trainer's own progress counter when a trainer is attached);
Lightning stores it in every checkpoint under the class name and calls :meth:`load_state_dict`
on restore (``_CheckpointConnector.restore_datamodule``). The next iteration of that epoch
then skips the batches already done, so a killed and restarted run sees exactly the batches it
would have seen (Lightning restores its own batch counter to the same position).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightning as L
import numpy as np
import torch

from datamodules.epoch_order import EpochSampler, shard_for_rank
from datamodules.errors import UserInputError
from datamodules.label_noise import apply_label_noise, noisy_label_chunks
from datamodules.sampling import image_weights, label_counts

if TYPE_CHECKING:
    from datamodules.data_config import DataConfig

BATCHES_AHEAD = 3


def _traversal_order_base():
    from ffcv.traversal_order.base import TraversalOrder

    return TraversalOrder


def make_resampled_order(sampler: EpochSampler, rank: int, world_size: int):
    """An FFCV traversal order whose epoch ``e`` is ``sampler.indices(e)``, rank ``rank``'s
    share of it, minus the first ``skip`` samples when a resume asked for it.

    FFCV 1.0.2 accepts a custom order as an *instance* of a TraversalOrder subclass and calls
    it with the loader (``order(loader)``), so the instance binds itself in ``__call__``.
    """

    class ResampledOrder(_traversal_order_base()):
        def __init__(self):  # bound to a loader in __call__ (the base sets .sampler)
            self.epoch_sampler, self.rank, self.world_size = sampler, rank, world_size
            self.skip: dict[int, int] = {}

        def __call__(self, loader):
            super().__init__(loader)
            return self

        def sample_order(self, epoch: int) -> np.ndarray:
            order = shard_for_rank(self.epoch_sampler.indices(epoch), self.rank, self.world_size)
            if self.loader.drop_last:  # FFCV drops the partial batch only of a whole epoch
                order = order[: len(order) // self.loader.batch_size * self.loader.batch_size]
            return order[self.skip.get(epoch, 0) :]

    return ResampledOrder()


def _batches_or_raise(iterator):
    """FFCV's batches, but a loader thread that died raises here instead of hanging.

    FFCV 1.0.2's producer thread (``EpochIterator.run``) only ever signals the end of an
    epoch: when a batch raises inside it, the thread dies and ``__next__`` waits on its queue
    forever. Before each ``next`` this waits, in half-second slices, until a batch is queued or
    the thread is gone; then ``next`` cannot block."""
    queue = iterator.output_queue
    while True:
        with queue.not_empty:  # the mutex is held: _qsize(), since qsize() would take it again
            while not queue._qsize() and iterator.is_alive():
                queue.not_empty.wait(0.5)
            died = not queue._qsize()  # empty, so the loop ended on a dead thread
        if died:
            raise RuntimeError(
                "FFCV's loader thread stopped without finishing the epoch (its exception is "
                "printed above by Python's thread hook); rerun to resume"
            )
        try:
            batch = next(iterator)
        except StopIteration:
            return
        yield batch


class HashtagBatches:
    """The iterable Lightning gets: one FFCV Loader reused across epochs, yielding
    ``(images, labels)`` with label noise applied. ``len`` is the full epoch's batch count."""

    def __init__(
        self, datamodule: HashtagDataModule, loader, order=None, train: bool = True, key=None
    ):
        self.datamodule, self.loader, self.order, self.train = datamodule, loader, order, train
        self.key = key  # the EpochKey the crops and flips read (training only)
        self._length = len(loader)

    def __len__(self) -> int:
        return self._length

    # Lightning checks its train loader for state_dict/load_state_dict to decide whether a
    # mid-epoch resume is exact (and warns otherwise); the position lives in the datamodule.
    def state_dict(self) -> dict[str, Any]:
        return self.datamodule.state_dict() if self.train else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if self.train and state_dict:
            self.datamodule.load_state_dict(state_dict)

    def __iter__(self):
        dm = self.datamodule
        epoch, skip = dm._begin_epoch() if self.train else (0, 0)
        if self.order is not None:
            self.order.skip = {epoch: skip * self.loader.batch_size} if skip else {}
            self.loader.next_epoch = epoch
        if self.key is not None:  # before the iterator's thread starts decoding
            self.key.set_epoch(epoch)
        iterator = iter(self.loader)
        try:
            for images, labels, sample_ids in _batches_or_raise(iterator):
                if self.train and dm.label_noise > 0:
                    labels = apply_label_noise(
                        labels,
                        sample_ids,
                        dm.label_noise,
                        dm.label_noise_dist,
                        dm.hashtag_counts,
                        dm.seed,
                    )
                if self.train:
                    dm._yielded += 1
                yield images, labels
        finally:
            iterator.close()


class HashtagDataModule(L.LightningDataModule):
    """Hashtag pretraining data from ``<prepared_dir>/manifest.json`` (see docs/CONTRACTS.md).

    ``prepared_dir=None``: :meth:`prepare_data` builds or reuses the prepared folder with
    ``datamodules.prepare.ensure_prepared(data_cfg, seed)``. Attributes (None before
    :meth:`setup`): ``vocab_size``, ``hashtag_counts`` (int64 [V], natural frequency in train),
    ``num_train``, ``num_val``, ``max_labels``, ``vocab`` (a Vocabulary when ``vocab.tsv``
    exists), ``hashtags`` (names).
    """

    def __init__(self, data_cfg: DataConfig, seed: int, prepared_dir: str | Path | None = None):
        super().__init__()
        self.data_cfg = data_cfg
        self.seed = int(seed)
        self.prepared_dir = Path(prepared_dir) if prepared_dir is not None else None
        self.label_noise = float(data_cfg.loading.label_noise)
        self.label_noise_dist = str(data_cfg.loading.label_noise_dist)
        if not 0.0 <= self.label_noise <= 1.0:
            raise UserInputError(f"data.loading.label_noise={self.label_noise} must be within 0..1")
        self.manifest: dict | None = None
        self.vocab_size: int | None = None
        self.hashtag_counts: np.ndarray | None = None
        self.num_train: int | None = None
        self.num_val: int | None = None
        self.max_labels: int | None = None
        self.vocab = None
        self.hashtags: list[str] = []
        self.sampler: EpochSampler | None = None
        self._train: HashtagBatches | None = None
        self._val: HashtagBatches | None = None
        self._epoch = -1  # the epoch being iterated (standalone use)
        self._yielded = 0  # training batches yielded in that epoch (standalone use)
        self._resume: tuple[int, int] | None = None

    # --- preparation --------------------------------------------------------------------------
    def prepare_data(self) -> None:
        if self.prepared_dir is None:
            from datamodules.prepare import ensure_prepared  # lazy: heavy, and only here

            self.prepared_dir = ensure_prepared(self.data_cfg, self.seed)

    def _resolve_prepared_dir(self) -> Path:
        if self.prepared_dir is None:  # another rank ran prepare_data: the path is a function
            from datamodules.prepare import ensure_prepared, prepared_dir

            path = prepared_dir(self.data_cfg, self.seed)
            if not (path / "manifest.json").is_file():
                path = ensure_prepared(self.data_cfg, self.seed)
            self.prepared_dir = path
        if not (self.prepared_dir / "manifest.json").is_file():
            raise UserInputError(
                f"{self.prepared_dir} has no manifest.json; run `python -m experiments prepare` "
                "or point prepared_dir at a prepared folder"
            )
        return self.prepared_dir

    def setup(self, stage: str | None = None) -> None:
        if self.manifest is not None:
            return
        folder = self._resolve_prepared_dir()
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        from datamodules.shards import check_train_shards

        full = bool(self.data_cfg.loading.verify_checksums)
        self.train_paths = check_train_shards(folder, manifest, full=full)
        self.train_path = self.train_paths[0]  # the first shard (one-shard callers)
        self.val_path = folder / manifest["val"]["file"]
        self.num_train = int(manifest["num_train"])
        self.num_val = int(manifest["val"]["count"])
        self.max_labels = int(manifest["max_labels"])
        self.vocab_size = int(manifest["vocab_size"])
        self.hashtag_counts = np.asarray(manifest["hashtag_counts"], dtype=np.int64)
        self._load_vocab(folder)
        self._build_sampler()
        self.manifest = manifest

    def _load_vocab(self, folder: Path) -> None:
        path = folder / "vocab.tsv"
        if not path.is_file():
            return
        try:
            from datamodules.hashtags import Vocabulary
        except ImportError:  # only the names are needed for logging
            self.hashtags = [
                line.split("\t")[0] for line in path.read_text(encoding="utf-8").splitlines()
            ]
            return
        self.vocab = Vocabulary.load(path)
        self.hashtags = list(self.vocab.hashtags)

    def _label_chunks(self):
        from datamodules.ffcv_read import iter_label_chunks

        for path in self.train_paths:  # sample-id order: shard s starts where s - 1 ended
            yield from iter_label_chunks(path)

    def _build_sampler(self) -> None:
        """Weights from the labels stored in the train .beton (the exact rows the loader
        reads), with frequencies from the same rows; with label noise, from those rows as
        corrupted (the train .beton's row i has sample_id i), the clean frequencies staying
        the noise marginal."""
        mode = str(self.data_cfg.loading.sampling)
        combine = str(self.data_cfg.loading.sampling_combine)
        counts = self.hashtag_counts
        if mode != "natural":
            counts = label_counts(self._label_chunks(), self.vocab_size)
            if not np.array_equal(counts, self.hashtag_counts):
                warnings.warn(
                    f"{self.train_path.parent}: manifest hashtag_counts differ from the labels "
                    "stored in the train .beton; using the stored labels' counts",
                    stacklevel=2,
                )
                self.hashtag_counts = counts
        noisy = mode != "natural" and self.label_noise > 0

        def rows():  # the labels training sees
            chunks = self._label_chunks()
            if not noisy:
                return chunks
            return noisy_label_chunks(
                chunks, self.label_noise, self.label_noise_dist, self.hashtag_counts, self.seed
            )

        if noisy:
            counts = label_counts(rows(), self.vocab_size)
        weights = image_weights(rows(), counts, mode, combine, self.num_train)
        self.sampler = EpochSampler(weights, self.num_train, self.seed)

    # --- loaders ------------------------------------------------------------------------------
    def _placement(self) -> tuple[torch.device, int, int]:
        trainer = self.trainer
        if trainer is None:
            return torch.device("cpu"), 0, 1
        return trainer.strategy.root_device, int(trainer.global_rank), int(trainer.world_size)

    def _loader(self, paths: list[Path], pipelines: dict, order, *, train: bool, world: int):
        from datamodules.ffcv_shards import sharded_loader

        return sharded_loader(
            paths,
            batch_size=int(self.data_cfg.loading.batch_size),
            num_workers=int(self.data_cfg.loading.num_workers),
            order=order,
            distributed=world > 1,
            seed=self.seed,
            drop_last=train,
            os_cache=True,
            batches_ahead=BATCHES_AHEAD,
            pipelines=pipelines,
        )

    def train_dataloader(self) -> HashtagBatches:
        if self._train is None:
            from datamodules.ffcv_augment import EpochKey
            from datamodules.ffcv_read import int_pipeline, labels_pipeline, train_image_pipeline

            self.setup("fit")
            device, rank, world = self._placement()
            order = make_resampled_order(self.sampler, rank, world)
            key = EpochKey(self.seed)
            pipelines = {  # the shards' rows in order: global row r holds sample_id r
                "image": train_image_pipeline(
                    self.data_cfg.loading.resolution,
                    device,
                    self.data_cfg.loading.crop_min_scale,
                    key=key,
                ),
                "labels": labels_pipeline(),
                "num_labels": None,
                "sample_id": int_pipeline(),
            }
            loader = self._loader(self.train_paths, pipelines, order, train=True, world=world)
            if len(loader) == 0:
                raise UserInputError(
                    f"{self.num_train} training images over {world} rank(s) make no full batch "
                    f"of data.loading.batch_size={self.data_cfg.loading.batch_size}; lower the batch size"
                )
            self._train = HashtagBatches(self, loader, order, train=True, key=key)
        return self._train

    def val_dataloader(self) -> HashtagBatches:
        if self._val is None:
            from ffcv.loader import OrderOption

            from datamodules.ffcv_read import int_pipeline, labels_pipeline, val_image_pipeline

            self.setup("validate")
            device, _, world = self._placement()
            pipelines = {
                "image": val_image_pipeline(self.data_cfg.loading.resolution, device),
                "labels": labels_pipeline(),
                "num_labels": None,
                "sample_id": int_pipeline(),
            }
            loader = self._loader(
                [self.val_path], pipelines, OrderOption.SEQUENTIAL, train=False, world=world
            )
            self._val = HashtagBatches(self, loader, train=False)
        return self._val

    # --- epochs and resume --------------------------------------------------------------------
    def _begin_epoch(self) -> tuple[int, int]:
        """The epoch a new training iteration reads, and how many batches it skips."""
        trainer = self.trainer
        epoch = int(trainer.current_epoch) if trainer is not None else self._epoch + 1
        skip = 0
        if self._resume is not None and self._resume[0] == epoch:
            skip = self._resume[1]
        self._resume = None
        self._epoch, self._yielded = epoch, skip
        return epoch, skip

    def state_dict(self) -> dict[str, Any]:
        trainer = self.trainer
        if trainer is not None and trainer.state.fn == "fit":
            progress = trainer.fit_loop.epoch_loop.batch_progress.current
            return {"epoch": int(trainer.current_epoch), "batches_done": int(progress.processed)}
        if self._resume is not None:  # restored, not iterated yet
            return {"epoch": self._resume[0], "batches_done": self._resume[1]}
        return {"epoch": max(self._epoch, 0), "batches_done": int(self._yielded)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._resume = (int(state_dict["epoch"]), int(state_dict["batches_done"]))
        self._epoch = self._resume[0] - 1  # standalone: the next iteration is that epoch
