"""The default console of a real run: progress bars and result lines only; --verbose shows
every library message (issue 13)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _console(tmp_path: Path, name: str, *flags: str) -> tuple[list[str], str]:
    """The lines a terminal is left showing (a carriage return redraws a line), and stdout."""
    env = {k: v for k, v in os.environ.items() if k not in ("WANDB_SILENT", "EXPERIMENTS_VERBOSE")}
    env.update(WANDB_MODE="offline", OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    command = [
        *flags,
        "pretrain",
        "configs/pretrain/tiny_cpu.yaml",
        "data.source.num_images=300",
        "data.dedup.enabled=false",
        "data.loading.num_workers=1",
        "schedule.images_seen=192",
        f"data.cache_dir={tmp_path / 'cache'}",
        f"runs_dir={tmp_path / name}",
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "experiments", *command],
        cwd=REPO,
        env=env,
        capture_output=True,  # bytes: text mode would turn each carriage return into a newline
        timeout=600,
    )
    stdout, stderr = proc.stdout.decode(), proc.stderr.decode()
    assert proc.returncode == 0, stderr[-3000:]
    shown = [line.split("\r")[-1] for line in (stdout + stderr).split("\n")]
    return [line for line in shown if line.strip()], stdout


@pytest.mark.slow
def test_default_console_is_quiet_and_verbose_shows_everything(tmp_path):
    lines, stdout = _console(tmp_path, "quiet")
    text = "\n".join(lines)
    for noise in ("Tip", "wandb", "GPU available", "TPU available", "deprecated", "logs directory"):
        assert noise not in text, text
    assert "warning" not in text.lower(), text
    results = [line for line in lines if line.startswith("pretrain: ")]
    assert len(results) == 1 and "precision@1" in results[0], text
    # one bar for the training stage, redrawn in place (validation has none)
    bars = [seg for seg in stdout.split("\r") if "it/s" in seg]
    assert bars and all(seg.startswith("train") and "\n" not in seg for seg in bars[:-1]), bars

    lines, _ = _console(tmp_path, "verbose", "--verbose")
    text = "\n".join(lines)
    for message in ("💡 Tip", "wandb:", "GPU available", "deprecated"):
        assert message in text, text
    assert sum(line.startswith("pretrain: ") for line in lines) == 1
