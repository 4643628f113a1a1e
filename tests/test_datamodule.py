"""HashtagDataModule on a tiny prepared folder written here with the project's own writer.

Each training image carries a unique sorted triple of hashtag ids, so the labels of a batch
tell exactly which images were read (the batch contract has no sample ids).
"""

from __future__ import annotations

import itertools
import json
import queue
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from datamodules.epoch_order import shard_for_rank
from datamodules.ffcv_store import run_in_fresh_process, write_hashtag_beton
from datamodules.pretrain import HashtagDataModule
from experiments.config import DataConfig, LoadingConfig

V, WIDTH, NUM_TRAIN, NUM_VAL, BATCH = 14, 4, 240, 40, 16
TRIPLES = list(itertools.combinations(range(V), 3))


def _Data(**overrides) -> DataConfig:  # noqa: N802
    """The data section these tests run with: small batches and crops, one loader thread."""
    fields = dict(batch_size=BATCH, num_workers=1, resolution=24, sampling="sqrt")
    return DataConfig(loading=LoadingConfig(**{**fields, **overrides}))


class _Rows:
    def __init__(self, first: int, count: int):
        self.first, self.count = first, count

    def __len__(self):
        return self.count

    def __getitem__(self, i):
        if not 0 <= i < self.count:
            raise IndexError(i)
        k = self.first + i
        rgb = np.random.default_rng(k).integers(0, 256, (32, 40, 3), dtype=np.uint8)
        return rgb, list(TRIPLES[k % len(TRIPLES)]), k


def _write_folder(folder: str) -> None:
    folder = Path(folder)
    write_hashtag_beton(
        folder / "train-000.beton",
        _Rows(0, NUM_TRAIN),
        max_labels=WIDTH,
        max_resolution=40,
        write_mode="jpg",
        jpeg_quality=90,
        num_workers=1,
    )
    write_hashtag_beton(
        folder / "val.beton",
        _Rows(NUM_TRAIN, NUM_VAL),
        max_labels=WIDTH,
        max_resolution=40,
        write_mode="jpg",
        jpeg_quality=90,
        num_workers=1,
    )


def make_prepared(folder: Path) -> Path:
    """A prepared folder in the manifest.json format of docs/CONTRACTS.md."""
    run_in_fresh_process(_write_folder, str(folder))
    counts = np.zeros(V, np.int64)
    for k in range(NUM_TRAIN):
        counts[list(TRIPLES[k])] += 1
    manifest = {
        "train": [{"file": "train-000.beton", "count": NUM_TRAIN}],
        "val": {"file": "val.beton", "count": NUM_VAL},
        "num_train": NUM_TRAIN,
        "max_labels": WIDTH,
        "vocab_size": V,
        "vocab_sha256": "",
        "hashtag_counts": counts.tolist(),
        "config": {},
        "provenance": {},
        "stats": {},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    (folder / "ids.txt").write_text("".join(f"img{k}\n" for k in range(NUM_TRAIN + NUM_VAL)))
    return folder


def ids_of(labels: torch.Tensor) -> list[int]:
    """Recover image ids from the unique label triples."""
    lookup = {t: k for k, t in enumerate(TRIPLES)}
    return [lookup[tuple(int(x) for x in row[:3])] for row in labels]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    return make_prepared(tmp_path_factory.mktemp("prepared"))


@pytest.fixture(scope="module")
def datamodule(prepared) -> HashtagDataModule:
    dm = HashtagDataModule(_Data(), seed=5, prepared_dir=prepared)
    dm.setup("fit")
    return dm


def test_attributes_follow_the_manifest(datamodule):
    assert datamodule.num_train == NUM_TRAIN and datamodule.vocab_size == V
    assert datamodule.hashtag_counts.sum() == 3 * NUM_TRAIN
    assert datamodule.sampler.weights.dtype == np.float32


def test_train_batches_contract_order_and_mid_epoch_resume(datamodule, prepared):
    batches = datamodule.train_dataloader()
    assert len(batches) == NUM_TRAIN // BATCH
    seen = []
    for images, labels in batches:  # epoch 0
        assert images.dtype == torch.uint8 and images.shape == (BATCH, 3, 24, 24)
        assert labels.dtype == torch.int32 and labels.shape == (BATCH, WIDTH)
        assert (labels[:, 3] == -1).all() and (labels[:, :3] >= 0).all()
        seen += ids_of(labels)
    expected = datamodule.sampler.indices(0)[: len(batches) * BATCH]
    assert seen == expected.tolist()
    assert len(set(seen)) < len(seen)  # sqrt sampling draws with replacement

    # epoch 1: a different draw; stop after 3 batches and save the position
    partial = []
    for step, (_, labels) in enumerate(batches):
        partial += ids_of(labels)
        if step == 2:
            break
    state = datamodule.state_dict()
    assert state == {"epoch": 1, "batches_done": 3}
    epoch1 = datamodule.sampler.indices(1)[: len(batches) * BATCH].tolist()
    assert partial == epoch1[: 3 * BATCH] and epoch1 != expected.tolist()

    # a fresh datamodule restored from that state resumes exactly where it stopped
    resumed = HashtagDataModule(_Data(), seed=5, prepared_dir=prepared)
    resumed.load_state_dict(state)
    rest = [k for _, labels in resumed.train_dataloader() for k in ids_of(labels)]
    assert rest == epoch1[3 * BATCH :]
    assert resumed.state_dict() == {"epoch": 1, "batches_done": len(batches)}


def test_validation_is_deterministic_and_complete(datamodule):
    def one_pass():
        images, labels = [], []
        for x, y in datamodule.val_dataloader():
            images.append(x.clone())
            labels.append(y.clone())
        return torch.cat(images), torch.cat(labels)

    first, second = one_pass(), one_pass()
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    assert first[0].shape == (NUM_VAL, 3, 24, 24)
    assert ids_of(first[1]) == list(range(NUM_TRAIN, NUM_TRAIN + NUM_VAL))


def test_label_noise_is_applied_per_epoch_and_reproducible(prepared):
    def labels_of_epoch0(p):
        dm = HashtagDataModule(
            _Data(label_noise=p, sampling="natural"), seed=1, prepared_dir=prepared
        )
        return torch.cat([y.clone() for _, y in dm.train_dataloader()])

    clean, noisy, again = labels_of_epoch0(0.0), labels_of_epoch0(0.5), labels_of_epoch0(0.5)
    assert torch.equal(noisy, again)
    present = clean >= 0
    changed = (noisy != clean)[present].float().mean().item()
    assert 0.35 < changed < 0.55  # p=0.5 minus redraws of the same hashtag (~1/14 per slot)
    assert torch.equal(noisy[~present], clean[~present])


def test_rank_shares_are_disjoint_and_cover_the_epoch(datamodule):
    order = datamodule.sampler.indices(0)
    shares = [shard_for_rank(order, r, 2) for r in range(2)]
    positions = set(range(0, len(order), 2)) & set(range(len(order)))
    assert len(shares[0]) == len(shares[1]) == NUM_TRAIN // 2
    assert np.array_equal(shares[0], order[sorted(positions)][: NUM_TRAIN // 2])
    assert np.array_equal(np.sort(np.concatenate(shares)), np.sort(order))


def _two_epochs(dm: HashtagDataModule) -> list[list[tuple[torch.Tensor, torch.Tensor]]]:
    """Training epochs 0 and 1 of ``dm`` (from the start), batches copied out of the ring."""
    dm.load_state_dict({"epoch": 0, "batches_done": 0})
    return [[(x.clone(), y.clone()) for x, y in dm.train_dataloader()] for _ in range(2)]


def test_crops_and_flips_are_a_function_of_seed_epoch_and_sample(datamodule, prepared):
    """Two datamodules with one seed give byte-identical batches over two epochs, with two
    loader threads or one; an image drawn twice in one epoch gets the same crop and flip, and
    one drawn in both epochs a different one (FFCV's unseeded draws fail all three)."""
    first = _two_epochs(HashtagDataModule(_Data(num_workers=2), seed=5, prepared_dir=prepared))
    second = _two_epochs(HashtagDataModule(_Data(num_workers=2), seed=5, prepared_dir=prepared))
    one_thread = _two_epochs(datamodule)  # seed 5, num_workers=1
    for run in (second, one_thread):
        assert [len(epoch) for epoch in run] == [NUM_TRAIN // BATCH] * 2
        for epoch_a, epoch_b in zip(first, run):
            for (xa, ya), (xb, yb) in zip(epoch_a, epoch_b):
                assert torch.equal(xa, xb) and torch.equal(ya, yb)

    by_epoch = []
    for epoch in first:
        images: dict[int, list[torch.Tensor]] = {}
        for x, y in epoch:
            for k, image in zip(ids_of(y), x):
                images.setdefault(k, []).append(image)
        by_epoch.append(images)
    repeated = [copies for copies in by_epoch[0].values() if len(copies) > 1]
    assert len(repeated) > 20  # sqrt sampling draws with replacement
    assert all(torch.equal(copies[0], c) for copies in repeated for c in copies[1:])
    common = sorted(set(by_epoch[0]) & set(by_epoch[1]))
    differ = [not torch.equal(by_epoch[0][k][0], by_epoch[1][k][0]) for k in common]
    assert len(common) > 50 and np.mean(differ) > 0.95

    other_seed = HashtagDataModule(_Data(num_workers=2), seed=6, prepared_dir=prepared)
    other_seed.setup("fit")
    other_seed.sampler = datamodule.sampler  # the same draws: only the augmentation seed differs
    epoch0 = _two_epochs(other_seed)[0]
    assert all(torch.equal(ya, yb) for (_, ya), (_, yb) in zip(first[0], epoch0))
    assert not any(torch.equal(xa, xb) for (xa, _), (xb, _) in zip(first[0], epoch0))


class _DyingProducer(threading.Thread):
    """An FFCV-like epoch iterator: a thread fills ``output_queue``; it may die mid-epoch."""

    def __init__(self, batches: int, dies: bool):
        super().__init__(daemon=True)
        self.output_queue: queue.Queue = queue.Queue(maxsize=2)
        self.batches, self.dies = batches, dies
        self.start()

    def run(self):
        for b in range(self.batches):
            time.sleep(0.01)
            self.output_queue.put(b)
        if self.dies:
            raise ValueError("a batch failed inside the loader thread")
        self.output_queue.put(None)

    def __next__(self):
        item = self.output_queue.get()
        if item is None:
            raise StopIteration
        return item


def test_a_loader_thread_that_dies_raises_instead_of_hanging():
    from datamodules.pretrain import _batches_or_raise

    assert list(_batches_or_raise(_DyingProducer(5, dies=False))) == [0, 1, 2, 3, 4]
    got = []
    with pytest.raises(RuntimeError, match="loader thread stopped"):
        for b in _batches_or_raise(_DyingProducer(3, dies=True)):
            got.append(b)
    assert got == [0, 1, 2]  # every batch made before the thread died, then the error


def test_loaders_leave_numbas_shared_array_types_unchanged(prepared):
    """FFCV 1.0.2's OS-cache manager sets ``mutable = False`` on numba's interned
    ``uint8[::1]`` (datamodules/ffcv_patch.py): the type's hash changes while it keys numba's
    dicts, and a Loader compiling in another thread could die of the KeyError. Building and
    running Loaders must leave the shared type, its hash and numba's lookups intact."""
    import numba as nb

    shared = nb.uint8[::1]
    before = (shared.key, hash(shared))
    for workers in (1, 2):
        dm = HashtagDataModule(_Data(num_workers=workers), seed=5, prepared_dir=prepared)
        dm.setup("fit")
        next(iter(dm.train_dataloader()))
        next(iter(dm.val_dataloader()))
    assert shared.mutable and (shared.key, hash(shared)) == before
    assert nb.uint8[::1] is shared  # still the one numba's type cache finds
    manager_type = dm.train_dataloader().loader.memory_manager.state_type
    assert [t.mutable for t in manager_type.types] == [False, True, True]  # FFCV's layout
