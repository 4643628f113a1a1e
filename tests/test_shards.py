"""Many train .beton shards: written in parallel and resumably, read as one corpus.

One synthetic corpus (1,600 images at 16 px) is prepared twice from the same cached stages:
in one train shard and in 32 shards written by two processes. Reading the 32 shards must give
exactly what one shard gives (the same resampled draws, batches and crops, keyed by the global
sample id), two DDP ranks must split the epoch, a resume must continue exactly, and a damaged
folder must be refused in one line naming the shard.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import chi2_contingency

from datamodules.errors import UserInputError
from datamodules.pretrain import HashtagDataModule, make_resampled_order
from experiments.config import DataConfig
from tests.data_configs import data_config
from tests.ffcv_pretrain import pretrain_in_subprocess

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
SHARD_SIZE = 45  # the corpus's 1,4xx training images -> 32 shards


def _cfg(cache: Path, shard_size: int, **over: dict) -> DataConfig:
    base = {
        "cache_dir": str(cache),
        "source": {
            "name": "synthetic",
            "num_images": 1600,
            "image_size": 16,
            "synthetic_concepts": 60,
        },
        "vocab": {"name": "raw", "min_count": 1, "max_tag_share": 0.0},
        "dedup": {"enabled": False},
        "write": {"shard_size": shard_size},
        "loading": {"resolution": 16, "batch_size": 32, "num_workers": 1, "sampling": "sqrt"},
    }
    return data_config(base, over)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> dict[str, Path]:
    from datamodules.prepare import ensure_prepared

    cache = tmp_path_factory.mktemp("cache")
    options = {"workers": 2}
    one = ensure_prepared(_cfg(cache, 0), 0, False, num_shards=2, launcher_options=options)
    many = ensure_prepared(
        _cfg(cache, SHARD_SIZE), 0, False, num_shards=2, launcher_options=options
    )
    return {"one": one, "many": many, "cache": cache}


def _dm(folder: Path, **over) -> HashtagDataModule:
    cfg = _cfg(folder.parent.parent, SHARD_SIZE, **over)
    dm = HashtagDataModule(cfg, seed=5, prepared_dir=folder)
    dm.setup("fit")
    return dm


def _epoch(dm: HashtagDataModule, batches: int | None = None) -> list[tuple]:
    """(images, labels, sample ids) of the training loader's batches (copies)."""
    loader = dm.train_dataloader().loader
    out = []
    for images, labels, ids in loader:
        out.append((images.clone(), labels.clone(), ids.clone()))
        if batches is not None and len(out) == batches:
            break
    return out


def test_manifest_lists_every_shard_with_count_and_checksum(prepared):
    from datamodules.shards import file_checksum

    manifest = json.loads((prepared["many"] / "manifest.json").read_text())
    train = manifest["train"]
    assert len(train) == 32
    assert [e["file"] for e in train] == [f"train-{i:03d}.beton" for i in range(32)]
    assert sum(e["count"] for e in train) == manifest["num_train"]
    assert [e["first_sample_id"] for e in train] == [SHARD_SIZE * i for i in range(32)]
    assert {e["vocab_sha256"] for e in train} == {manifest["vocab_sha256"]}
    for entry in (train[0], train[-1], manifest["val"]):
        path = prepared["many"] / entry["file"]
        assert entry["bytes"] == path.stat().st_size
        assert entry["blake2b"] == file_checksum(path)
    one = json.loads((prepared["one"] / "manifest.json").read_text())
    assert (prepared["one"] / "ids.txt").read_text() == (prepared["many"] / "ids.txt").read_text()
    assert one["hashtag_counts"] == manifest["hashtag_counts"]
    assert not list(prepared["many"].parent.glob(".*.shards"))  # staging removed


def test_32_shards_draw_and_read_exactly_what_one_shard_does(prepared):
    one, many = _dm(prepared["one"]), _dm(prepared["many"])
    assert len(many.train_paths) == 32 and len(one.train_paths) == 1
    np.testing.assert_array_equal(one.sampler.weights, many.sampler.weights)
    draws = many.sampler.indices(0)
    np.testing.assert_array_equal(one.sampler.indices(0), draws)
    # batches: identical images (crops keyed by the global sample id), labels and ids
    a, b = _epoch(one, 4), _epoch(many, 4)
    for (ia, la, sa), (ib, lb, sb) in zip(a, b, strict=True):
        assert torch.equal(sa, sb) and torch.equal(la, lb) and torch.equal(ia, ib)
    assert b[0][2].tolist() == draws[:32].tolist()
    # a whole resampled epoch's hashtag shares (fresh loaders: epoch 0 again)
    labels = np.concatenate([b[1].numpy() for b in _epoch(_dm(prepared["many"]))])
    shares_many = np.bincount(labels[labels >= 0], minlength=many.vocab_size)
    labels_one = np.concatenate([b[1].numpy() for b in _epoch(_dm(prepared["one"]))])
    shares_one = np.bincount(labels_one[labels_one >= 0], minlength=one.vocab_size)
    seen = (shares_many + shares_one) > 0
    assert chi2_contingency(np.stack([shares_many[seen], shares_one[seen]]))[1] > 0.99
    np.testing.assert_array_equal(shares_many, shares_one)
    # sqrt resampling flattens the natural shares: the most frequent hashtag loses share
    natural = np.asarray(many.hashtag_counts, np.float64)
    top = int(np.argmax(natural))
    assert shares_many[top] / shares_many.sum() < natural[top] / natural.sum()
    assert len({int(s) // SHARD_SIZE for s in b[0][2]}) > 10  # one batch spans many shards


def test_two_ranks_read_disjoint_halves_that_cover_the_epoch(prepared):
    dm = _dm(prepared["many"])
    draws = dm.sampler.indices(0)
    seen = []
    for rank in (0, 1):
        order = make_resampled_order(dm.sampler, rank, 2)
        dm._train = None
        dm._placement = lambda r=rank: (torch.device("cpu"), r, 2)
        loader = dm._loader(dm.train_paths, _pipelines(), order, train=True, world=2)
        seen.append(torch.cat([ids.clone() for _, _, ids in loader]).numpy())
    half = len(draws) // 2 // 32 * 32
    assert len(seen[0]) == len(seen[1]) == half
    np.testing.assert_array_equal(seen[0], draws[0::2][:half])
    np.testing.assert_array_equal(seen[1], draws[1::2][:half])
    # disjoint positions of the epoch, together covering it (up to the last partial batches)
    positions = np.sort(np.concatenate([np.arange(half) * 2, np.arange(half) * 2 + 1]))
    np.testing.assert_array_equal(positions, np.arange(2 * half))


def _pipelines() -> dict:
    from datamodules.ffcv_read import int_pipeline, labels_pipeline, train_image_pipeline

    return {
        "image": train_image_pipeline(16),
        "labels": labels_pipeline(),
        "num_labels": None,
        "sample_id": int_pipeline(),
    }


def test_mid_epoch_resume_across_shard_boundaries_gives_the_same_batches(prepared):
    whole = [(i.clone(), lab.clone()) for i, lab in _dm(prepared["many"]).train_dataloader()]
    first = _dm(prepared["many"])
    batches = iter(first.train_dataloader())
    for _ in range(5):
        next(batches)
    state = first.state_dict()
    batches.close()
    assert state == {"epoch": 0, "batches_done": 5}
    resumed = _dm(prepared["many"])
    resumed.load_state_dict(state)
    rest = [(i.clone(), lab.clone()) for i, lab in resumed.train_dataloader()]
    assert len(rest) == len(whole) - 5
    for (ia, la), (ib, lb) in zip(whole[5:], rest, strict=True):
        assert torch.equal(ia, ib) and torch.equal(la, lb)


def test_32_shards_pretrain_with_sqrt_resampling(prepared, tmp_path):
    metrics = pretrain_in_subprocess(
        prepared["many"], tmp_path, "shards32", 640, "data.source.image_size=16"
    )
    assert metrics["status"] == "complete" and metrics["images_seen"] == 640
    assert metrics["axes"]["sampling"] == "sqrt"


# --------------------------------------------------------------------------------------------
# writing: a killed write, a rerun
# --------------------------------------------------------------------------------------------
class Items:
    """(rgb, labels, sample id) rows; ``fail`` makes row 3 raise (a write that dies)."""

    def __init__(self, first: int, count: int, fail: bool = False):
        self.sample_ids = range(first, first + count)
        self.fail = fail

    def open(self):
        return self

    def __len__(self) -> int:
        return len(self.sample_ids)

    def __getitem__(self, i: int):
        if self.fail and i == 3:
            raise OSError("disk gone")
        k = self.sample_ids[i]
        rgb = np.random.default_rng(k).integers(0, 256, (16, 16, 3), dtype=np.uint8)
        return rgb, [k % 7], k


def test_killed_write_leaves_nothing_complete_and_rerun_writes_only_missing(tmp_path):
    from datamodules.shards import write_shards, written

    cfg = _cfg(tmp_path, 8, write={"mode": "raw"})
    staging = tmp_path / "staging"
    jobs = [(f"train-{i:03d}.beton", Items(8 * i, 8, fail=i == 1)) for i in range(3)]
    with pytest.raises(Exception, match="1 item"):
        write_shards(jobs, cfg, "v1", staging=staging, options={"workers": 2})
    assert written(staging / "train-000.beton", "v1") and written(staging / "train-002.beton", "v1")
    assert not (staging / "train-001.beton").exists()
    assert not list(staging.glob(".*"))  # no temporaries left behind
    # a half-copied file under the final name, without its record, is not complete either
    (staging / "train-001.beton").write_bytes(b"\0" * 100)
    before = (staging / "train-000.beton").stat().st_mtime_ns
    jobs[1] = ("train-001.beton", Items(8, 8))
    records, wrote = write_shards(jobs, cfg, "v1", staging=staging, options={"workers": 2})
    assert wrote == ["train-001.beton"]
    assert (staging / "train-000.beton").stat().st_mtime_ns == before
    assert [records[n]["count"] for n, _ in jobs] == [8, 8, 8]
    assert records["train-001.beton"]["first_sample_id"] == 8
    # another vocabulary: nothing counts as written
    assert written(staging / "train-000.beton", "v2") is None


# --------------------------------------------------------------------------------------------
# bad prepared folders
# --------------------------------------------------------------------------------------------
def _copy(prepared: Path, dst: Path) -> Path:
    """The prepared folder as symlinks (files are big), with its own manifest.json."""
    dst.mkdir()
    for path in prepared.iterdir():
        if path.name != "manifest.json":
            (dst / path.name).symlink_to(path)
    shutil.copyfile(prepared / "manifest.json", dst / "manifest.json")
    return dst


def _refused(folder: Path, **over) -> str:
    with pytest.raises(UserInputError) as info:
        _dm(folder, **over)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_damaged_folders_are_refused_naming_the_shard(prepared, tmp_path):
    many = prepared["many"]
    missing = _copy(many, tmp_path / "missing")
    (missing / "train-007.beton").unlink()
    assert "train-007.beton is missing" in _refused(missing)

    truncated = _copy(many, tmp_path / "truncated")
    (truncated / "train-003.beton").unlink()
    data = (many / "train-003.beton").read_bytes()
    (truncated / "train-003.beton").write_bytes(data[: len(data) // 2])
    assert "train-003.beton has" in _refused(truncated)

    flipped = _copy(many, tmp_path / "flipped")
    (flipped / "train-011.beton").unlink()
    corrupt = bytearray(data)
    corrupt[len(corrupt) // 3] ^= 0xFF
    (flipped / "train-011.beton").write_bytes(bytes(corrupt))
    manifest = json.loads((flipped / "manifest.json").read_text())
    manifest["train"][11].update(
        {k: manifest["train"][3][k] for k in ("count", "bytes")}, first_sample_id=11 * SHARD_SIZE
    )
    (flipped / "manifest.json").write_text(json.dumps(manifest))
    _dm(flipped)  # sizes and counts agree: only the checksum tells
    assert "train-011.beton: blake2b checksum differs" in _refused(
        flipped, loading={"verify_checksums": True}
    )

    mixed = _copy(many, tmp_path / "mixed")
    manifest = json.loads((mixed / "manifest.json").read_text())
    manifest["train"][20]["vocab_sha256"] = "f" * 64  # a shard of another preparation
    (mixed / "manifest.json").write_text(json.dumps(manifest))
    assert "train-020.beton was labelled with another vocabulary" in _refused(mixed)
