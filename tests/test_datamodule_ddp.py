"""HashtagDataModule under Lightning: two DDP ranks (CPU, gloo) read disjoint halves of the
epoch's draws; a run stopped mid-epoch and resumed from its checkpoint reads the rest."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import pytest
import torch

from datamodules.pretrain import HashtagDataModule
from tests.test_datamodule import BATCH, NUM_TRAIN, _Data, ids_of, make_prepared

pytestmark = pytest.mark.slow


class _Recorder(L.LightningModule):
    """Records which images each training step saw (from the unique label triples)."""

    def __init__(self, out: str):
        super().__init__()
        self.out = out
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.seen: list[list[int]] = []

    def training_step(self, batch, batch_idx):
        images, labels = batch
        assert images.dtype == torch.uint8 and labels.dtype == torch.int32
        self.seen.append(ids_of(labels))
        return (self.weight * images.float().mean()).sum()

    def on_train_end(self):
        path = Path(self.out) / f"rank{self.global_rank}-{len(list(Path(self.out).iterdir()))}"
        path.write_text(json.dumps({"rank": self.global_rank, "seen": self.seen}))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _trainer(root: Path, **kwargs) -> L.Trainer:
    return L.Trainer(
        accelerator="cpu",
        max_epochs=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        default_root_dir=str(root),
        **kwargs,
    )


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    return make_prepared(tmp_path_factory.mktemp("prepared"))


def test_two_ddp_ranks_read_disjoint_halves_of_the_epoch(prepared, tmp_path):
    out = tmp_path / "seen"
    out.mkdir()
    dm = HashtagDataModule(_Data(), seed=3, prepared_dir=prepared)
    trainer = _trainer(tmp_path, devices=2, strategy="ddp_spawn", enable_checkpointing=False)
    trainer.fit(_Recorder(str(out)), datamodule=dm)
    records = [json.loads(p.read_text()) for p in sorted(out.iterdir())]
    assert sorted(r["rank"] for r in records) == [0, 1]
    per_rank = {r["rank"]: [k for step in r["seen"] for k in step] for r in records}
    steps = (NUM_TRAIN // 2) // BATCH
    assert len(per_rank[0]) == len(per_rank[1]) == steps * BATCH
    dm.setup("fit")
    order = dm.sampler.indices(0).tolist()
    assert per_rank[0] == order[0::2][: steps * BATCH]
    assert per_rank[1] == order[1::2][: steps * BATCH]


def test_lightning_resume_mid_epoch_reads_the_remaining_batches(prepared, tmp_path):
    out = tmp_path / "seen"
    out.mkdir()
    ckpt = tmp_path / "ckpt"
    save = L.pytorch.callbacks.ModelCheckpoint(
        dirpath=ckpt, every_n_train_steps=4, save_top_k=-1, filename="{step}"
    )
    dm = HashtagDataModule(_Data(), seed=4, prepared_dir=prepared)
    _trainer(tmp_path, devices=1, max_steps=6, callbacks=[save]).fit(
        _Recorder(str(out)), datamodule=dm
    )
    state = torch.load(ckpt / "step=4.ckpt", weights_only=False)["HashtagDataModule"]
    assert state == {"epoch": 0, "batches_done": 4}

    resumed = HashtagDataModule(_Data(), seed=4, prepared_dir=prepared)
    _trainer(tmp_path, devices=1).fit(
        _Recorder(str(out)), datamodule=resumed, ckpt_path=str(ckpt / "step=4.ckpt")
    )
    first, second = (json.loads(p.read_text())["seen"] for p in sorted(out.iterdir()))
    order = resumed.sampler.indices(0).tolist()
    steps = NUM_TRAIN // BATCH
    assert [k for s in first for k in s] == order[: 6 * BATCH]
    assert [k for s in second for k in s] == order[4 * BATCH : steps * BATCH]
