"""One requeue path under SLURM (issue 15): the signal submitit asks SLURM for reaches the training
process, which checkpoints at its next step and requeues the job once; the rerun ends with the
metrics of an uninterrupted run.

The end-to-end test starts pretraining the way a sweep does (``launch_submitit`` with submitit's
LocalExecutor, whose worker runs ``SubmititJob`` -> ``subprocess_runner``), with SLURM's variables
faked so that Lightning's ``SLURMEnvironment.detect()`` is true and ``scontrol`` replaced by a
script on PATH that records its arguments. The run itself is ``tests.fake_data`` (the in-memory
datamodule of tests/test_resume.py), so the metrics are exactly reproducible on the CPU.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
import torch

from experiments import launchers, requeue
from experiments.launchers import Job, SubmititJob, Task
from experiments.sweep_spec import SlurmSpec

REPO = Path(__file__).resolve().parent.parent
IMAGES = 640  # 20 steps of 32, 16 batches per epoch
SLURM_ENV = {
    "SLURM_JOB_ID": "4243",
    "SLURM_ARRAY_JOB_ID": "4242",
    "SLURM_ARRAY_TASK_ID": "3",
    "SLURM_NTASKS": "1",
    "SLURM_PROCID": "0",
    "SLURM_LOCALID": "0",
    "SLURM_NODEID": "0",
    "SLURM_JOB_NAME": "wsl-requeue-test",
}


class FakeDataTask(Task):
    """A pretraining task whose run is ``python -m tests.fake_data`` (in-memory data)."""

    def command(self) -> list[str]:
        run = [sys.executable, "-m", "tests.fake_data", self.runs_dir, self.name, str(IMAGES)]
        return [*run, *self.overrides]


def _fake_slurm(monkeypatch, tmp_path: Path, array: bool = True) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "scontrol.log"
    for tool in ("scontrol", "srun"):
        script = bin_dir / tool
        script.write_text(f'#!/bin/sh\necho "$@" >> "{log}"\n')
        script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    for key, value in SLURM_ENV.items():
        monkeypatch.setenv(key, value)
    if not array:
        monkeypatch.delenv("SLURM_ARRAY_JOB_ID")
        monkeypatch.delenv("SLURM_ARRAY_TASK_ID")
    return log


def test_trainer_listens_for_the_signal_submitit_asks_slurm_for(tmp_path, monkeypatch):
    _fake_slurm(monkeypatch, tmp_path)  # a fake srun lets submitit's AutoExecutor start
    executor = launchers.make_executor("slurm", tmp_path / "slurm", SlurmSpec(), "sweep")
    sbatch = executor._executor._make_submission_file_text("python -m x", "0")
    assert requeue.requeue_signal() == signal.SIGUSR2
    assert "#SBATCH --signal=USR2@120" in sbatch.splitlines()
    assert requeue.RequeueOnSignal().signum == signal.SIGUSR2
    sbatch_example = (REPO / "scripts" / "sbatch_pretrain.sh").read_text()
    assert "#SBATCH --signal=USR2@120" in sbatch_example.splitlines()


def test_slurm_job_id_names_the_array_task(tmp_path, monkeypatch):
    _fake_slurm(monkeypatch, tmp_path)
    assert requeue.slurm_job_id() == "4242_3"
    monkeypatch.delenv("SLURM_ARRAY_JOB_ID")
    assert requeue.slurm_job_id() == "4243"


def test_hpc_checkpoint_numbering(tmp_path):
    assert requeue.next_hpc_checkpoint(tmp_path).name == "hpc_ckpt_1.ckpt"
    for n in (2, 10):
        (tmp_path / f"hpc_ckpt_{n}.ckpt").touch()
    assert [p.name for p in requeue.hpc_checkpoints(tmp_path)] == [
        "hpc_ckpt_2.ckpt",
        "hpc_ckpt_10.ckpt",
    ]
    assert requeue.next_hpc_checkpoint(tmp_path).name == "hpc_ckpt_11.ckpt"


def test_signal_during_a_transfer_is_requeued_by_the_worker(tmp_path, monkeypatch):
    """No training process took the signal: the worker requeues, once, and ends without result."""
    log = _fake_slurm(monkeypatch, tmp_path, array=False)
    runs = tmp_path / "runs"
    (runs / "pre").mkdir(parents=True)
    (runs / "pre" / "metrics.json").write_text('{"status": "complete"}')
    job = Job(
        Task("pretrain", "pre", "c.yaml", (), str(runs)),
        tuple(Task("transfer", f"pre__{t}", "t.yaml", (), str(runs)) for t in "ab"),
    )
    ran = []

    def runner(task: Task) -> None:  # SLURM's signal arrives while this transfer runs
        ran.append(task.name)
        signal.raise_signal(requeue.requeue_signal())

    with pytest.raises(SystemExit) as exit_info:
        SubmititJob(runner)(job)
    assert exit_info.value.code == requeue.REQUEUE_EXIT
    assert ran == ["pre__a"]  # the next transfer waits for the requeued job
    assert log.read_text().splitlines() == ["requeue 4243"]
    assert signal.getsignal(signal.SIGUSR2) in (signal.SIG_DFL, None)  # handler restored


def _ckpt_step(path: Path) -> int:
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["global_step"])
    except Exception:  # being written right now
        return -1


def _launch(runs: Path, folder: Path, overrides: tuple[str, ...]) -> threading.Thread:
    job = Job(FakeDataTask("pretrain", "run", "unused.yaml", overrides, str(runs)))
    executor = launchers.make_executor("submitit-local", folder, SlurmSpec(), "requeue-test")
    thread = threading.Thread(target=launchers.launch_submitit, args=([job], executor))
    thread.start()
    return thread


def _job_processes() -> tuple[psutil.Process | None, psutil.Process | None]:
    worker = trainer = None
    for proc in psutil.Process().children(recursive=True):
        try:
            cmd = " ".join(proc.cmdline())
        except psutil.Error:
            continue
        if "submitit.core._submit" in cmd:
            worker = proc
        elif "tests.fake_data" in cmd:
            trainer = proc
    return worker, trainer


@pytest.mark.slow
def test_requeue_signal_checkpoints_requeues_once_and_the_rerun_matches(tmp_path, monkeypatch):
    log = _fake_slurm(monkeypatch, tmp_path)
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("WANDB_MODE", "disabled")
    overrides = ("trainer.checkpoint_every_n_steps=4",)

    _launch(tmp_path / "a", tmp_path / "submitit-a", overrides).join(timeout=600)
    reference = json.loads((tmp_path / "a" / "run" / "metrics.json").read_text())
    assert not log.exists()  # no signal, no requeue

    runs = tmp_path / "b"
    run_dir = runs / "run"
    thread = _launch(runs, tmp_path / "submitit-b", overrides)
    last = run_dir / "checkpoints" / "last.ckpt"
    signalled_at = -1
    deadline = time.time() + 300
    while time.time() < deadline and thread.is_alive():
        if last.is_file() and (step := _ckpt_step(last)) >= 4:
            worker, trainer = _job_processes()
            assert worker is not None and trainer is not None
            for proc in (worker, trainer):  # SLURM signals every process of the job step
                proc.send_signal(signal.SIGUSR2)
            signalled_at = step
            break
        time.sleep(0.05)
    thread.join(timeout=300)
    assert 4 <= signalled_at < 20, "the run ended before the signal; make it longer"

    hpc = sorted(run_dir.glob("hpc_ckpt_*.ckpt"))
    assert [p.name for p in hpc] == ["hpc_ckpt_1.ckpt"]
    assert signalled_at <= _ckpt_step(hpc[0]) < 20  # written at the signal, not at the end
    assert not (run_dir / "metrics.json").exists()
    assert log.read_text().splitlines() == ["requeue 4242_3"]  # one requeue, by the run
    assert "checkpointed and requeued the job" in "".join(
        p.read_text() for p in (tmp_path / "submitit-b").glob("*_log.err")
    )

    # SLURM reruns the requeued job: the same pickled job, resumed from hpc_ckpt_1.ckpt
    _launch(runs, tmp_path / "submitit-b", overrides).join(timeout=600)
    resumed = json.loads((run_dir / "metrics.json").read_text())
    assert "Restoring states from the checkpoint path at" in (run_dir / "sweep.log").read_text()
    assert f"{run_dir}/hpc_ckpt_1.ckpt" in (run_dir / "sweep.log").read_text()
    assert not list(run_dir.glob("hpc_ckpt_*.ckpt"))  # dropped once training is over
    assert log.read_text().splitlines() == ["requeue 4242_3"]
    assert resumed["images_seen"] == reference["images_seen"] == IMAGES
    assert resumed["final"] == reference["final"]  # exactly: checked to hold on this CPU
    assert resumed["best"] == reference["best"]
