"""HashtagPretrainer end to end on the in-memory fake datamodule; precision@k; load_pretrained."""

import json

import pytest
import torch

from datamodules.errors import UserInputError
from experiments.config import load_config
from experiments.pretrain import default_run_name, run_pretrain
from lightning_modules.checkpoints import load_pretrained
from lightning_modules.metrics import HashtagPrecision
from tests.fake_data import fake_datamodule, tiny_overrides


def test_precision_at_k_by_hand():
    logits = torch.tensor(
        [
            [0.9, 0.1, 0.5, 0.3, 0.2, 0.0],  # top: 0, 2, 3, 4, 1
            [0.0, 0.1, 0.2, 0.3, 0.4, 0.5],  # top: 5, 4, 3, 2, 1
            [1.0, 0.0, 0.0, 0.0, 0.0, 0.0],  # no labels: excluded
        ]
    )
    labels = torch.tensor([[2, 0, -1], [1, -1, -1], [-1, -1, -1]], dtype=torch.int32)
    metric = HashtagPrecision((1, 5))
    metric.update(logits[:2], labels[:2])
    metric.update(logits[2:], labels[2:])
    out = metric.compute()
    # image 0: top1 = 0 (hit); top5 hits {0, 2} -> 2/5; image 1: top1 = 5 miss; top5 hits {1} -> 1/5
    assert float(out["precision_at_1"]) == pytest.approx((1 + 0) / 2)
    assert float(out["precision_at_5"]) == pytest.approx((2 / 5 + 1 / 5) / 2)


def test_default_run_name_reads_as_axes():
    cfg = load_config(
        None, ["data.source.name=synthetic", "data.loading.label_noise=0.1", "seed=3"]
    )
    assert default_run_name(cfg) == "rx-tiny_synthetic-1-wordnet_samp-sqrt_noise-0.1_seed-3"


@pytest.mark.slow
def test_tiny_pretrain_learns_hashtags_and_is_reusable(tmp_path):
    torch.set_num_threads(1)
    cfg = load_config(None, tiny_overrides(tmp_path, "tiny", images_seen=3200, every=50))
    run_dir = run_pretrain(cfg, fake_datamodule())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "complete" and metrics["kind"] == "pretrain"
    assert metrics["images_seen"] == 3200
    # chance precision@1 is ~2/16 (1-3 of 16 hashtags per image)
    assert metrics["final"]["precision_at_1"] > 0.6
    assert metrics["best"]["precision_at_1"] >= metrics["final"]["precision_at_1"]
    assert metrics["axes"]["vocab_size"] == 16 and metrics["axes"]["images"] == 512
    assert (run_dir / "config.yaml").is_file() and (run_dir / "logs" / "metrics.csv").is_file()

    # complete runs are skipped
    mtime = (run_dir / "metrics.json").stat().st_mtime
    assert run_pretrain(cfg, fake_datamodule()) == run_dir
    assert (run_dir / "metrics.json").stat().st_mtime == mtime

    net, info = load_pretrained(run_dir)
    assert info["init"] == "hashtag" and info["pretrain_run"] == "tiny"
    assert info["pretrain_axes"] == metrics["axes"] and info["hashtags"][3] == "tag3"
    assert net.fc.out_features == 16
    cfg_wrong = load_config(None, ["model.width_per_group=8"])
    with pytest.raises(UserInputError, match="width_per_group"):
        load_pretrained(run_dir / "checkpoints" / "last.ckpt", cfg_wrong.model)

    from experiments.__main__ import main

    image = tmp_path / "img.png"
    from PIL import Image

    dm = fake_datamodule()
    Image.fromarray(dm.val_images[0].permute(1, 2, 0).numpy()).save(image)
    code = main(["predict", "--checkpoint", str(run_dir), str(image), "--top-k", "3"])
    assert code == 0


@pytest.mark.parametrize("width", [4, 8, 16, 32, 48])
def test_paper_configs_match_the_recipe(width):
    cfg = load_config(f"configs/pretrain/paper_rx101_32x{width}d.yaml")
    assert cfg.data.loading.batch_size * cfg.trainer.devices * cfg.trainer.num_nodes == 8064
    assert (cfg.model.layers, cfg.model.groups, cfg.model.width_per_group) == (
        [3, 4, 23, 3],
        32,
        width,
    )
    assert cfg.data.loading.resolution == 224 and cfg.trainer.strategy == "ddp"
    assert cfg.optim.nesterov and cfg.schedule.decay == "step"


def test_tiny_cpu_config_loads():
    cfg = load_config("configs/pretrain/tiny_cpu.yaml")
    assert cfg.trainer.accelerator == "cpu" and cfg.model.name == "rx-tiny"
