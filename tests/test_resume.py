"""Pretraining through the real FFCV HashtagDataModule is a pure function of its seed on the CPU:
two runs of one command end with identical metrics and weights, and so does a run killed with
SIGKILL mid-epoch and restarted with the same command."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.ffcv_pretrain import write_prepared

REPO = Path(__file__).resolve().parent.parent
# 512 training images in batches of 32: 16 steps per epoch; 60 steps; checkpoints every 10
IMAGES = 1920


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    return write_prepared(tmp_path_factory.mktemp("prepared"), num_train=512, num_val=128)


def _command(prepared: Path, runs_dir: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "tests.ffcv_pretrain",
        str(prepared),
        str(runs_dir),
        "run",
        str(IMAGES),
        "trainer.checkpoint_every_n_steps=10",
    ]


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}


def _start(prepared: Path, runs_dir: Path) -> subprocess.Popen:
    """Start the run; its stderr goes to a file (a pipe nobody reads would fill and block)."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    with open(runs_dir / "stderr.txt", "ab") as err:
        return subprocess.Popen(
            _command(prepared, runs_dir),
            cwd=REPO,
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=err,
        )


def _finish(proc: subprocess.Popen, runs_dir: Path) -> dict:
    proc.wait(timeout=600)
    err = (runs_dir / "stderr.txt").read_text(errors="replace")
    assert proc.returncode == 0, err[-3000:]
    return json.loads((runs_dir / "run" / "metrics.json").read_text())


def _checkpoint(runs_dir: Path) -> dict:
    return torch.load(runs_dir / "run" / "checkpoints" / "last.ckpt", weights_only=False)


def _step_of(ckpt: Path) -> int:
    try:
        return int(torch.load(ckpt, map_location="cpu", weights_only=True)["global_step"])
    except Exception:  # being replaced right now
        return -1


def _assert_same_run(a: Path, b: Path, metrics_a: dict, metrics_b: dict) -> None:
    assert metrics_a["images_seen"] == metrics_b["images_seen"] == IMAGES
    for key in ("final", "best"):
        assert metrics_a[key] == metrics_b[key]  # exact floats
    weights_a, weights_b = _checkpoint(a)["state_dict"], _checkpoint(b)["state_dict"]
    assert weights_a.keys() == weights_b.keys()
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)
    assert _checkpoint(a)["val_history"] == _checkpoint(b)["val_history"]


@pytest.mark.slow
def test_runs_and_a_sigkilled_rerun_end_identical(prepared, tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    procs = [_start(prepared, first), _start(prepared, second)]  # side by side, a thread each
    reference, again = _finish(procs[0], first), _finish(procs[1], second)
    _assert_same_run(first, second, reference, again)

    runs = tmp_path / "killed"
    proc = _start(prepared, runs)
    last = runs / "run" / "checkpoints" / "last.ckpt"
    deadline = time.time() + 600
    killed_at = -1
    while time.time() < deadline and proc.poll() is None:
        # kill mid-epoch (step 20 is batch 4 of epoch 1), after at least one checkpoint
        if last.is_file() and (step := _step_of(last)) >= 20:
            os.kill(proc.pid, signal.SIGKILL)
            killed_at = step
            break
        time.sleep(0.05)
    proc.wait()
    assert 20 <= killed_at < 60, "the run ended before it could be killed; make it longer"
    assert not (runs / "run" / "metrics.json").exists()

    resumed = _finish(_start(prepared, runs), runs)
    _assert_same_run(first, runs, reference, resumed)
