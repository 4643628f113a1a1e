"""Run directories and atomic writes (issue 2)."""

import os

import pytest

from experiments.config import load_config
from experiments.rundir import RunDir, atomic_write_json, read_json


def test_run_directory_round_trip(tmp_path):
    cfg = load_config(None, ["name=unit", "data.scale=0.25"])
    run = RunDir.create(tmp_path, cfg.name)
    run.write_config(cfg)
    assert load_config(run.config_path) == cfg
    assert not run.is_complete()
    run.write_metrics({"status": "running"})
    assert not run.is_complete()
    run.write_metrics({"status": "complete", "top1": 0.5})
    assert run.is_complete()
    assert run.read_metrics()["top1"] == 0.5
    assert run.checkpoints.is_dir()
    assert run.last_checkpoint() is None
    assert sorted(p.name for p in run.path.iterdir()) == [
        "checkpoints",
        "config.yaml",
        "metrics.json",
    ]


def test_atomic_write_leaves_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "m.json"
    atomic_write_json(path, {"a": 1})

    class Boom:
        def __str__(self):
            raise RuntimeError("serialization failed midway")

    with pytest.raises(RuntimeError):
        atomic_write_json(path, {"a": Boom()})
    assert read_json(path) == {"a": 1}
    assert os.listdir(tmp_path) == ["m.json"]  # no temporary file left behind
