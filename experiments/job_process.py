"""One sweep job in one fresh interpreter: its pretraining run, then its transfers, in order.

The local launcher starts ``python -m experiments.job_process '<job as JSON>'`` once per job,
instead of one interpreter per run: importing torch, Lightning, torchmetrics, timm and FFCV
costs about 11 s a process on 2 cores (``python -c "import ffcv, lightning, torchmetrics,
timm"``), paid once per job now rather than once per run. Each run still writes its output to
its own ``<run dir>/sweep.log`` (file descriptors 1 and 2 point there while it runs, so library
and C-level output land there too) and starts from its own seed, so a run gives the same numbers
as in a process of its own (the end-to-end test of ``tests/test_reproduce.py`` checks a probe
bit for bit).

Sharing the process is safe with FFCV because no run writes a .beton file in its own process:
``prepare``'s writers and the transfer targets' writer run in spawned processes (FFCV's
DatasetWriter forks and can deadlock in a process that already ran a Loader). A job whose
process dies (a crash outside Python) leaves its unfinished runs failed; the launcher reads each
run's state from its run directory, as it does after a subprocess run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import asdict
from pathlib import Path

from experiments.launchers import (
    Job,
    Requeued,
    RunFailed,
    Task,
    child_env,
    execute_job,
    log_header,
    single_process_env,
)


@contextmanager
def output_to(path: Path) -> Iterator[None]:
    """Send the process's output to ``path``: ``sys.stdout``/``sys.stderr`` and, for library and
    C-level output, file descriptors 1 and 2. Everything is restored on exit."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    try:
        with open(path, "a", buffering=1) as log:
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            try:
                with redirect_stdout(log), redirect_stderr(log):
                    yield
            finally:
                log.flush()
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
    finally:
        os.close(saved[0])
        os.close(saved[1])


@contextmanager
def _environment(task: Task) -> Iterator[None]:
    """The task's environment variables for the time it runs (as ``subprocess_runner`` gives)."""
    saved = dict(os.environ)
    if task.kind == "transfer":
        plain = single_process_env()
        os.environ.clear()
        os.environ.update(plain)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def in_process_runner(task: Task) -> None:
    """Run ``python -m experiments <verb> ...``'s ``main`` for the task in this process."""
    from experiments.__main__ import main
    from experiments.requeue import REQUEUE_EXIT

    task.run_dir.mkdir(parents=True, exist_ok=True)
    with open(task.log_path, "a") as log:
        log.write(log_header(task, "in the job's process"))
    with output_to(task.log_path), _environment(task):
        try:
            rc = main([task.kind, task.config, *task.overrides])
        except SystemExit as exc:  # a run that requeues itself exits this way
            rc = exc.code if isinstance(exc.code, int) else 1
    if rc == REQUEUE_EXIT and task.kind == "pretrain":
        raise Requeued(f"{task.name} checkpointed and requeued the job", by_run=True)
    if rc != 0:
        raise RunFailed(f"{task.kind} {task.name} exited with status {rc}")


def job_to_json(job: Job) -> str:
    return json.dumps(asdict(job))


def job_from_json(text: str) -> Job:
    raw = json.loads(text)
    task = lambda t: Task(**{**t, "overrides": tuple(t["overrides"])})  # noqa: E731
    return Job(task(raw["pretrain"]), tuple(task(t) for t in raw["transfers"]))


def run_in_fresh_process(job: Job, env_extra: dict[str, str] | None = None) -> None:
    """The local launcher's way to run a job: one child interpreter for all of its runs, with
    ``env_extra`` added to its environment.

    Output outside the runs (a crash of the job process itself) goes to the pretraining run's
    log. Raises :class:`Requeued` when the pretraining run checkpointed and requeued the job.
    """
    from experiments.requeue import REQUEUE_EXIT

    job.pretrain.run_dir.mkdir(parents=True, exist_ok=True)
    env = child_env({**os.environ, **(env_extra or {})})
    with open(job.pretrain.log_path, "a") as log:
        rc = subprocess.call(
            [sys.executable, "-m", "experiments.job_process", job_to_json(job)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        if rc not in (0, REQUEUE_EXIT):
            log.write(f"sweep: the job's process exited with status {rc} at {time.ctime()}\n")
    if rc == REQUEUE_EXIT:
        raise Requeued(f"{job.pretrain.name} checkpointed and requeued the job", by_run=True)


def main(argv: list[str]) -> int:
    from experiments.requeue import REQUEUE_EXIT

    try:
        execute_job(job_from_json(argv[0]), in_process_runner)
    except Requeued:
        return REQUEUE_EXIT
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
