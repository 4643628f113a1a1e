"""Launchers that run a sweep's jobs: ``local`` (fresh processes started from this one),
``submitit-local`` (submitit's LocalExecutor) and ``slurm`` (AutoExecutor job arrays): the names
of ``datamodules.launch.LAUNCHERS``, which mean the same for ``prepare``. The executor comes from
``datamodules.launch.submitit_executor``, the one helper both use. ``wandb-export`` and the W&B
agent's side are :mod:`experiments.wandb_sweep`.

A *job* is one pretraining run and the transfer runs that follow it. Every run is a
:class:`Task` (a verb, a config and overrides). The local launcher runs each job in one fresh
interpreter (:mod:`experiments.job_process`: the runs one after another, each logging to its own
folder), ``--jobs N`` of them at once; submitit's workers run each task as a fresh
``python -m experiments <verb> <config> k=v ...`` subprocess (:func:`subprocess_runner`), which
keeps SLURM's signal forwarding and per-rank environment as they were. No run writes a .beton
file in its own process (FFCV's DatasetWriter can deadlock in a process that already ran a
Loader; every writer is spawned). Tests inject a runner (any picklable callable taking a Task).

Nothing here schedules: the local launcher is a loop over a thread pool of ``--jobs`` workers
(each waiting on its job's process), and everything else is submitit or ``wandb sweep``/agent.
Completed runs are skipped (``RunDir.is_complete``); a run with a checkpoint is resumed by the
run itself (``run_pretrain`` does it); a failed run is simply run again. Before a SLURM time limit the job gets submitit's signal (USR2, ``slurm_signal_delay_s``
ahead); the worker forwards it to the running run, a pretraining run checkpoints at its next step
and requeues the job itself (:mod:`experiments.requeue` has the whole path).
"""

from __future__ import annotations

import concurrent.futures
import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import submitit
from tqdm import tqdm

from datamodules import launch
from experiments.config import REPO_ROOT
from experiments.rundir import RunDir
from experiments.sweep_spec import PlannedRun, SlurmSpec

LOG_FILE = "sweep.log"
_STAMP = "%Y-%m-%d %H:%M:%S"  # when a run started, in its sweep.log header


@dataclass(frozen=True)
class Task:
    """One run: ``python -m experiments <kind> <config> <overrides...>`` writing runs_dir/name."""

    kind: str  # pretrain | transfer
    name: str
    config: str
    overrides: tuple[str, ...]
    runs_dir: str

    @property
    def run_dir(self) -> Path:
        return Path(self.runs_dir) / self.name

    @property
    def log_path(self) -> Path:
        return self.run_dir / LOG_FILE

    def command(self) -> list[str]:
        return [sys.executable, "-m", "experiments", self.kind, self.config, *self.overrides]


@dataclass(frozen=True)
class Job:
    pretrain: Task
    transfers: tuple[Task, ...] = ()

    @property
    def tasks(self) -> tuple[Task, ...]:
        return (self.pretrain, *self.transfers)


def jobs_from_plan(runs: Sequence[PlannedRun]) -> list[Job]:
    return [
        Job(
            Task("pretrain", r.name, r.base, r.overrides, r.runs_dir),
            tuple(Task("transfer", t.name, t.config, t.overrides, r.runs_dir) for t in r.transfers),
        )
        for r in runs
    ]


Runner = Callable[[Task], None]


class RunFailed(RuntimeError):
    pass


def single_process_env() -> dict[str, str]:
    """The environment without SLURM's task variables, so Lightning sees one plain process."""
    return {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}


class Requeued(Exception):
    """The job is being requeued (``by_run``: a pretraining run checkpointed and requeued it)."""

    def __init__(self, why: str, by_run: bool):
        super().__init__(why)
        self.by_run = by_run


class _RequeueSignal:
    """The worker's handler for the requeue signal: remember it, forward it to the running run.

    Forwarding makes the run see the signal however the cluster delivers it (SLURM signals every
    process of the step with proctrack/cgroup, only the task's process group with others); a
    duplicate is harmless, since the run's handler only sets a flag.
    """

    def __init__(self) -> None:
        self.received = False
        self.child: subprocess.Popen | None = None

    def __call__(self, signum: int, frame: Any) -> None:
        self.received = True
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(signum)


_REQUEUE = _RequeueSignal()


def child_env(env: dict[str, str]) -> dict[str, str]:
    """``env`` for a child interpreter that imports this checkout first (PYTHONPATH)."""
    paths = [str(REPO_ROOT), env.get("PYTHONPATH")]
    return {**env, "PYTHONPATH": os.pathsep.join(filter(None, paths))}


def log_header(task: Task, note: str = "") -> str:
    """The line a run's ``sweep.log`` gets each time the run starts: when, and its command."""
    where = f"  ({note})" if note else ""
    return f"\n=== {time.strftime(_STAMP)} $ {' '.join(task.command())}{where}\n"


def elapsed_s(run_dir: Path) -> float | None:
    """Seconds from the run's last start in its ``sweep.log`` to its ``metrics.json``: what a
    user waited for it, process start and data preparation included (None: no such record)."""
    log, metrics = Path(run_dir) / LOG_FILE, Path(run_dir) / "metrics.json"
    if not (log.is_file() and metrics.is_file()):
        return None
    end = metrics.stat().st_mtime
    starts = []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("=== ") and " $ " in line:
            try:
                starts.append(time.mktime(time.strptime(line[4:].split(" $ ")[0], _STAMP)))
            except ValueError:
                continue
    starts = [t for t in starts if t <= end]
    return end - starts[-1] if starts else None


def subprocess_runner(task: Task) -> None:
    """Run the task in a fresh interpreter, appending its output to ``<run dir>/sweep.log``.

    Transfers run as a single process even inside a multi-task SLURM job (only rank 0 runs
    them), so SLURM's variables are removed from their environment.
    """
    from experiments.requeue import REQUEUE_EXIT

    task.run_dir.mkdir(parents=True, exist_ok=True)
    env = child_env(single_process_env() if task.kind == "transfer" else dict(os.environ))
    with open(task.log_path, "a") as log:
        log.write(log_header(task))
        log.flush()
        with subprocess.Popen(
            task.command(), stdout=log, stderr=subprocess.STDOUT, env=env
        ) as child:
            _REQUEUE.child = child
            try:
                rc = child.wait()
            finally:
                _REQUEUE.child = None
    if rc == REQUEUE_EXIT and task.kind == "pretrain":
        raise Requeued(f"{task.name} checkpointed and requeued the job", by_run=True)
    if rc != 0:
        raise RunFailed(f"{task.kind} {task.name} exited with status {rc}")


def _rank() -> int:
    """The task's global rank inside a submitit job (0 outside of one)."""
    try:
        return submitit.JobEnvironment().global_rank
    except RuntimeError:
        return 0


def _check_requeue_signal(task: Task) -> None:
    if _REQUEUE.received:
        raise Requeued(f"requeue signal before or during {task.kind} {task.name}", by_run=False)


def _run_task(task: Task, runner: Runner) -> str:
    if RunDir(task.run_dir).is_complete():
        return "complete"
    _check_requeue_signal(task)
    try:
        runner(task)
    except Requeued:
        raise
    except Exception as exc:  # a failed run must not stop the sweep; its log says why
        task.run_dir.mkdir(parents=True, exist_ok=True)
        with open(task.log_path, "a") as log:
            log.write(f"sweep: {task.kind} failed: {exc}\n{traceback.format_exc()}")
    if not RunDir(task.run_dir).is_complete():
        _check_requeue_signal(task)  # killed by the forwarded signal: rerun after the requeue
        return "failed"
    return "complete"


def execute_job(job: Job, runner: Runner | None = None) -> dict[str, str]:
    """Run a job's pretraining, then (on rank 0 only) its transfers. Returns name -> status."""
    runner = runner or subprocess_runner
    status = {job.pretrain.name: _run_task(job.pretrain, runner)}
    if _rank() != 0:
        return status
    for task in job.transfers:
        if status[job.pretrain.name] != "complete":
            status[task.name] = "blocked"
            continue
        status[task.name] = _run_task(task, runner)
    return status


class SubmititJob(submitit.helpers.Checkpointable):
    """The callable submitit pickles and runs in each task of a job.

    It replaces submitit's handler of the requeue signal (which would requeue and kill the
    running run at once) with :class:`_RequeueSignal`; a pretraining run then checkpoints and
    requeues the job itself; otherwise rank 0 requeues it here (:func:`requeue.requeue_job`).
    Either way the task ends without a result, so submitit waits for the requeued job.
    (Checkpointable covers a signal that comes before this handler is installed.)
    """

    def __init__(self, runner: Runner | None = None):
        self.runner = runner

    def __call__(self, job: Job) -> dict[str, str]:
        from experiments import requeue

        if "SLURM_JOB_ID" not in os.environ:  # a local job: nothing to requeue
            return execute_job(job, self.runner)
        signum = requeue.requeue_signal()
        _REQUEUE.received = False
        previous = signal.signal(signum, _REQUEUE)
        try:
            return execute_job(job, self.runner)
        except Requeued as why:
            if not why.by_run and _rank() == 0:
                requeue.requeue_job()
            print(f"sweep: {why}; ending this task without a result", file=sys.stderr)
            sys.exit(requeue.REQUEUE_EXIT)  # SystemExit: submitit writes no result pickle
        finally:
            signal.signal(signum, previous)
            _REQUEUE.received = False


# ---------------------------------------------------------------------------------------------
# before / after bookkeeping


def task_state(task: Task) -> str:
    """complete | resume (has a checkpoint) | retry (ran before, failed) | new."""
    rd = RunDir(task.run_dir)
    if rd.is_complete():
        return "complete"
    if rd.last_checkpoint() is not None or any(rd.checkpoints.glob("*.ckpt")):
        return "resume"
    if task.log_path.is_file():
        return "retry"
    return "new"


@dataclass
class SweepReport:
    before: dict[str, str] = field(default_factory=dict)
    after: dict[str, str] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)
    submitted: list[str] = field(default_factory=list)  # job ids when not waited for

    def failed(self) -> list[str]:
        return [n for n, s in self.after.items() if s in ("failed", "blocked")]

    def counts(self) -> dict[str, int]:
        done = [n for n, s in self.after.items() if s == "complete"]
        return {
            "runs": len(self.before),
            "done": len(done),
            "skipped": sum(self.before[n] == "complete" for n in done),
            "resumed": sum(self.before[n] == "resume" for n in done),
            "retried": sum(self.before[n] == "retry" for n in done),
            "failed": len(self.failed()),
        }

    def lines(self) -> list[str]:
        if self.submitted:
            return [
                f"submitted {len(self.submitted)} jobs: {', '.join(self.submitted)}",
                "rerun the same sweep command after they end to see done / resumed / failed",
            ]
        c = self.counts()
        out = [
            f"done {c['done']}/{c['runs']} ({c['skipped']} already complete, "
            f"{c['resumed']} resumed, {c['retried']} rerun after a failure) | "
            f"resumed {c['resumed']} | failed {c['failed']}"
        ]
        for name in self.failed():
            why = "pretraining failed" if self.after[name] == "blocked" else "failed"
            out.append(f"  {why}: {name} (log: {self.logs[name]})")
        return out


def _report(jobs: Sequence[Job]) -> SweepReport:
    rep = SweepReport()
    for job in jobs:
        for task in job.tasks:
            rep.before[task.name] = task_state(task)
    return rep


def _state_on_disk(job: Job, task: Task) -> str:
    if RunDir(task.run_dir).is_complete():
        return "complete"
    if task is not job.pretrain and not RunDir(job.pretrain.run_dir).is_complete():
        return "blocked"
    return "failed"


def _finish(rep: SweepReport, jobs: Sequence[Job], results: Sequence[dict | None]) -> SweepReport:
    for job, result in zip(jobs, results):
        for task in job.tasks:
            state = (result or {}).get(task.name)
            if state is None:  # read from disk: the job ran in a process of its own, died
                state = _state_on_disk(job, task)  # before reaching the run, or was not run
            rep.after[task.name] = state
            # a transfer blocked by its failed pretraining: the pretraining log says why
            rep.logs[task.name] = (job.pretrain if state == "blocked" else task).log_path
    return rep


# ---------------------------------------------------------------------------------------------
# launchers


def add_jobs_argument(parser: Any) -> None:
    """``--jobs N`` for the commands that launch locally (``sweep``, ``reproduce``)."""
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="local: jobs (a pretraining run and its transfers) at once, sharing the cores",
    )


def launch_local(
    jobs: Sequence[Job], runner: Runner | None = None, at_once: int = 1
) -> SweepReport:
    """On this machine, in this process's loop. By default each job (its pretraining run, then
    its transfers) runs in one fresh interpreter (:mod:`experiments.job_process`), ``at_once``
    jobs at a time, each given ``cores / at_once`` torch threads (OMP_NUM_THREADS, unless set);
    with ``runner``, this process runs each job and the runner each of its runs, in order."""
    from experiments import job_process

    rep = _report(jobs)
    if runner is not None:
        results: list[dict | None] = []
        for job in tqdm(jobs, desc="sweep", unit="job", disable=len(jobs) < 2):
            try:
                results.append(execute_job(job, runner))
            except Requeued as why:  # inside an sbatch job: the run requeued it; rerun resumes
                _exit_requeued(why)
        return _finish(rep, jobs, results)
    todo = [job for job in jobs if any(rep.before[t.name] != "complete" for t in job.tasks)]
    env = {}
    if at_once > 1 and "OMP_NUM_THREADS" not in os.environ:
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // at_once))
    with concurrent.futures.ThreadPoolExecutor(max(1, at_once)) as pool:
        done = pool.map(lambda job: job_process.run_in_fresh_process(job, env), todo)
        try:
            for _ in tqdm(done, desc="sweep", unit="job", total=len(todo), disable=len(todo) < 2):
                pass
        except Requeued as why:
            pool.shutdown(cancel_futures=True)
            _exit_requeued(why)
    return _finish(rep, jobs, [None] * len(jobs))  # every state read from its run directory


def _exit_requeued(why: Requeued) -> None:
    from experiments.requeue import REQUEUE_EXIT

    print(f"sweep: {why}", file=sys.stderr)
    raise SystemExit(REQUEUE_EXIT) from None


def slurm_parameters(slurm: SlurmSpec, job_name: str) -> dict:
    """AutoExecutor parameters for one node group: one task per GPU (Lightning's SLURM DDP)."""
    return launch.slurm_parameters(
        name=job_name,
        nodes=slurm.nodes,
        gpus_per_node=slurm.gpus_per_node,
        cpus_per_task=slurm.cpus_per_task,
        timeout_min=slurm.timeout_min,
        array_parallelism=slurm.array_parallelism,
        signal_delay_s=120,  # USR2 this long before the limit (experiments.requeue)
        mem_gb=slurm.mem_gb,
        partition=slurm.partition,
        account=slurm.account,
        qos=slurm.qos,
        constraint=slurm.constraint,
        additional=slurm.additional_parameters,
    )


def make_executor(kind: str, folder: Path, slurm: SlurmSpec, job_name: str) -> submitit.Executor:
    """``submitit-local`` or ``slurm`` (:func:`datamodules.launch.submitit_executor`)."""
    return launch.submitit_executor(kind, folder, slurm_parameters(slurm, job_name))


def launch_submitit(
    jobs: Sequence[Job],
    executor: submitit.Executor,
    runner: Runner | None = None,
    wait: bool = True,
) -> SweepReport:
    """Submit every job as one array (``executor.map_array``); optionally wait for them."""
    rep = _report(jobs)
    todo = [job for job in jobs if any(rep.before[t.name] != "complete" for t in job.tasks)]
    if not todo:
        return _finish(rep, jobs, [None] * len(jobs))
    handles = executor.map_array(SubmititJob(runner), todo)
    if not wait:
        rep.submitted = [h.job_id for h in handles]
        return rep
    by_name: dict[str, dict | None] = {}
    for job, handle in zip(todo, tqdm(handles, desc="sweep", unit="job", disable=len(todo) < 2)):
        try:
            by_name[job.pretrain.name] = handle.result()
        except Exception as exc:  # the job crashed outside a run (e.g. killed); say where
            with open(handle.paths.stderr.parent / "sweep-errors.log", "a") as log:
                log.write(f"{job.pretrain.name}: {exc}\n")
            by_name[job.pretrain.name] = None
    return _finish(rep, jobs, [by_name.get(job.pretrain.name) for job in jobs])
