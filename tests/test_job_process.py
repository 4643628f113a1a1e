"""The local launcher runs a job (a pretraining run and its transfers) in one fresh interpreter:
output goes to each run's own log, states are read back from the run directories, a job whose
process dies leaves its runs failed or blocked. That a run gives the same numbers in the job's
process as in a process of its own is checked on real runs by the end-to-end test of
``tests/test_reproduce.py``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from experiments import job_process, launchers
from experiments.launchers import Job, Task


def _job(runs: Path, kinds=("pretrain", "transfer"), prefix: str = "run") -> Job:
    tasks = [
        Task(kind, f"{prefix}{i}", "configs/x.yaml", ("a=1", f"name={prefix}{i}"), str(runs))
        for i, kind in enumerate(kinds)
    ]
    return Job(tasks[0], tuple(tasks[1:]))


def test_output_to_sends_python_and_c_level_output_to_the_file_and_restores(tmp_path, capfd):
    log = tmp_path / "run.log"
    log.write_text("before\n")
    with job_process.output_to(log):
        print("python stdout")
        print("python stderr", file=sys.stderr)
        os.write(1, b"fd 1\n")
        os.write(2, b"fd 2\n")
        subprocess.run([sys.executable, "-c", "print('child')"], check=True)
    print("after")
    assert log.read_text() == "before\npython stdout\npython stderr\nfd 1\nfd 2\nchild\n"
    assert capfd.readouterr().out == "after\n"


def test_a_job_round_trips_through_json(tmp_path):
    job = _job(tmp_path, ("pretrain", "transfer", "transfer"))
    assert job_process.job_from_json(job_process.job_to_json(job)) == job


def _fake_main(argv):
    """Stands in for ``experiments.__main__.main``: 'ok' runs write metrics, 'crash' fails."""
    kind, _, *overrides = argv
    name = dict(o.split("=", 1) for o in overrides)["name"]
    print(f"{kind} {name} pid {os.getpid()}")
    if "crash=1" in overrides:
        return 1
    run = Path(os.environ["FAKE_RUNS"]) / name
    run.mkdir(parents=True, exist_ok=True)
    (run / "metrics.json").write_text(json.dumps({"status": "complete", "kind": kind}))
    return 0


def test_each_run_logs_to_its_own_file_and_a_failed_pretraining_blocks_its_transfers(
    tmp_path, monkeypatch
):
    import experiments.__main__ as cli

    monkeypatch.setenv("FAKE_RUNS", str(tmp_path))
    monkeypatch.setenv("SLURM_NTASKS", "4")  # a transfer runs without SLURM's task variables
    seen_env = {}

    def main_seeing_env(argv):
        seen_env[argv[0]] = os.environ.get("SLURM_NTASKS")
        return _fake_main(argv)

    monkeypatch.setattr(cli, "main", main_seeing_env)
    job = _job(tmp_path)
    status = launchers.execute_job(job, job_process.in_process_runner)
    assert status == {"run0": "complete", "run1": "complete"}
    assert seen_env == {"pretrain": "4", "transfer": None}
    assert os.environ["SLURM_NTASKS"] == "4"  # restored after the transfer
    for task in job.tasks:
        text = task.log_path.read_text()
        assert text.count("=== ") == 1 and "(in the job's process)" in text
        assert f"{task.kind} {task.name} pid {os.getpid()}" in text

    broken = Job(
        Task("pretrain", "bad", "c.yaml", ("crash=1", "name=bad"), str(tmp_path)),
        (Task("transfer", "after", "c.yaml", ("name=after",), str(tmp_path)),),
    )
    status = launchers.execute_job(broken, job_process.in_process_runner)
    assert status == {"bad": "failed", "after": "blocked"}
    assert "exited with status 1" in broken.pretrain.log_path.read_text()


def test_local_launcher_starts_one_process_per_job_and_reads_states_from_disk(
    tmp_path, monkeypatch
):
    calls = []

    def fake_call(cmd, stdout, stderr, env):
        calls.append(cmd)
        job = job_process.job_from_json(cmd[-1])
        assert cmd[1:3] == ["-m", "experiments.job_process"]
        # the job's process completes the pretraining run, then dies inside the transfer
        (job.pretrain.run_dir / "metrics.json").write_text('{"status": "complete"}')
        stdout.write("Segmentation fault\n")
        return -11

    monkeypatch.setattr(job_process.subprocess, "call", fake_call)
    jobs = [_job(tmp_path), _job(tmp_path, ("pretrain",), prefix="done")]
    (tmp_path / "done0").mkdir()  # that job is complete: no process for it
    (tmp_path / "done0" / "metrics.json").write_text('{"status": "complete"}')
    rep = launchers.launch_local(jobs)
    assert len(calls) == 1
    assert rep.after == {"run0": "complete", "run1": "failed", "done0": "complete"}
    log = (tmp_path / "run0" / "sweep.log").read_text()
    assert "Segmentation fault" in log and "exited with status -11" in log


def test_jobs_at_once_overlap_and_share_the_cores(tmp_path, monkeypatch):
    import threading
    import time

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    lock, running, peak, threads = threading.Lock(), [0], [0], []

    def fake_call(cmd, stdout, stderr, env):
        job = job_process.job_from_json(cmd[-1])
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
            threads.append(env.get("OMP_NUM_THREADS"))
        time.sleep(0.3)
        for task in job.tasks:
            task.run_dir.mkdir(parents=True, exist_ok=True)
            (task.run_dir / "metrics.json").write_text('{"status": "complete"}')
        with lock:
            running[0] -= 1
        return 0

    monkeypatch.setattr(job_process.subprocess, "call", fake_call)
    jobs = [_job(tmp_path, prefix=f"j{i}-") for i in range(4)]
    rep = launchers.launch_local(jobs, at_once=2)
    assert peak[0] == 2 and len(threads) == 4
    assert set(threads) == {str(max(1, (os.cpu_count() or 1) // 2))}
    assert rep.counts()["done"] == 8 and not rep.failed()


@pytest.mark.parametrize("argv", [["--jobs", "0"], ["--jobs", "2", "--launcher", "slurm"]])
def test_jobs_must_be_positive_and_local(argv, capsys):
    from experiments.__main__ import main

    assert (
        main(["sweep", "configs/sweeps/scale_mini.yaml", *argv, "--runs-dir", "/nonexistent"]) == 2
    )
    assert "--jobs" in capsys.readouterr().err
