"""A run killed with SIGKILL and restarted with the same command ends with the same metrics."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
IMAGES = 1920  # 60 steps of 32; checkpoints every 10 steps; 16 batches per epoch


def _command(runs_dir: Path, name: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "tests.fake_data",
        str(runs_dir),
        name,
        str(IMAGES),
        "trainer.checkpoint_every_n_steps=10",
    ]


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}


def _run(runs_dir: Path, name: str) -> dict:
    subprocess.run(
        _command(runs_dir, name),
        cwd=REPO,
        env=_env(),
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=300,
    )
    return json.loads((runs_dir / name / "metrics.json").read_text())


def _step_of(ckpt: Path) -> int:
    try:
        return int(torch.load(ckpt, map_location="cpu", weights_only=True)["global_step"])
    except Exception:  # being replaced right now
        return -1


@pytest.mark.slow
def test_sigkill_then_rerun_matches_uninterrupted(tmp_path):
    reference = _run(tmp_path / "a", "run")

    runs = tmp_path / "b"
    proc = subprocess.Popen(
        _command(runs, "run"),
        cwd=REPO,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    last = runs / "run" / "checkpoints" / "last.ckpt"
    deadline = time.time() + 240
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

    resumed = _run(runs, "run")
    assert resumed["images_seen"] == reference["images_seen"] == IMAGES
    for key in ("loss", "precision_at_1", "precision_at_5"):
        assert resumed["final"][key] == pytest.approx(reference["final"][key], abs=1e-6)
        assert resumed["best"][key] == pytest.approx(reference["best"][key], abs=1e-6)
