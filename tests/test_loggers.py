"""Run loggers: the optional TensorBoard logger (issue 13), and a real run's metrics.json
provenance."""

import importlib.util
import json
import sys

import pytest
import torch

from datamodules.errors import UserInputError
from experiments.config import load_config
from experiments.loggers import run_loggers
from experiments.pretrain import run_pretrain
from experiments.rundir import RunDir
from tests.fake_data import fake_datamodule, tiny_overrides


def test_tensorboard_writes_event_files_and_provenance(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    torch.set_num_threads(1)
    overrides = [
        *tiny_overrides(tmp_path, "tb", images_seen=640, every=10),
        "logging.tensorboard=true",
    ]
    overrides.append("trainer.log_every_n_steps=5")
    run_dir = run_pretrain(load_config(None, overrides), fake_datamodule())
    events = sorted((run_dir / "logs" / "tensorboard").glob("events.out.tfevents.*"))
    assert events, list(run_dir.rglob("*"))
    acc = EventAccumulator(str(events[0].parent))
    acc.Reload()
    steps = [e.step for e in acc.Scalars("train/loss")]
    assert steps == [4, 9, 14, 19]  # every 5 of 20 optimizer steps (0-based)
    assert "val/precision_at_1" in acc.Tags()["scalars"]
    assert (run_dir / "logs" / "metrics.csv").is_file()  # CSV as always
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["provenance"]["argv"] == sys.argv
    assert metrics["provenance"]["versions"]["lightning"] is not None


def test_tensorboard_off_by_default_and_missing_package_is_one_line(tmp_path, monkeypatch):
    cfg = load_config(None, [f"runs_dir={tmp_path}", "name=x", "logging.wandb=false"])
    run = RunDir.create(tmp_path, "x")
    assert [type(lg).__name__ for lg in run_loggers(cfg, run)] == ["CSVLogger"]
    cfg.logging.tensorboard = True
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name in ("tensorboard", "tensorboardX") else real(name, *a),
    )
    with pytest.raises(UserInputError, match="needs the `tensorboard` package") as info:
        run_loggers(cfg, run)
    assert "\n" not in str(info.value)
