"""Run directories, atomic writes (issue 2) and the provenance metrics.json records (issue 13)."""

import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from datamodules.provenance import git_state, provenance
from experiments.config import load_config
from experiments.rundir import RunDir, atomic_write_json, read_json

REPO = Path(__file__).resolve().parent.parent


def test_run_directory_round_trip(tmp_path):
    cfg = load_config(None, ["name=unit", "data.write.scale=0.25"])
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


def _git(root, *args) -> str:
    return subprocess.run(
        ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def test_metrics_json_records_commit_versions_and_command_line(tmp_path):
    run = RunDir.create(tmp_path, "p")
    run.write_metrics({"status": "complete", "top1": 0.5})
    metrics = run.read_metrics()
    assert metrics["top1"] == 0.5
    prov = metrics["provenance"]
    assert prov["git"]["commit"] == _git(REPO, "rev-parse", "HEAD")
    dirty = _git(REPO, "status", "--porcelain", "--untracked-files=no") != ""
    assert prov["git"]["dirty"] is dirty
    assert set(prov["versions"]) == {"python", "torch", "lightning", "ffcv", "numpy"}
    assert prov["versions"]["torch"] == metadata.version("torch")
    assert prov["versions"]["ffcv"] == metadata.version("ffcv")
    assert prov["versions"]["python"] == "{}.{}.{}".format(*sys.version_info[:3])
    assert prov["argv"] == sys.argv and prov["cwd"] == os.getcwd()
    # a caller that brings its own provenance keeps it
    run.write_metrics({"status": "complete", "provenance": {"git": "elsewhere"}})
    assert run.read_metrics()["provenance"] == {"git": "elsewhere"}


def test_dirty_means_tracked_changes(tmp_path):
    _git(tmp_path, "init", "-q")
    (tmp_path / "code.py").write_text("x = 1\n")
    _git(tmp_path, "add", "code.py")
    _git(tmp_path, "commit", "-q", "-m", "one")
    head = _git(tmp_path, "rev-parse", "HEAD")
    assert git_state(tmp_path) == {"commit": head, "dirty": False}
    (tmp_path / "scratch.txt").write_text("untracked files do not count\n")
    assert git_state(tmp_path) == {"commit": head, "dirty": False}
    (tmp_path / "code.py").write_text("x = 2\n")
    assert git_state(tmp_path) == {"commit": head, "dirty": True}


def test_provenance_outside_a_checkout_or_without_git_is_null(tmp_path, monkeypatch):
    assert git_state(tmp_path) == {"commit": None, "dirty": None}
    monkeypatch.setenv("PATH", str(tmp_path))  # no git binary at all
    prov = provenance(REPO)
    assert prov["git"] == {"commit": None, "dirty": None}
    assert prov["versions"]["numpy"] == metadata.version("numpy")
