"""One requeue path under SLURM: the time-limit signal, a checkpoint at the next step, a requeue.

Before the time limit SLURM sends one signal to every process of the job step: ``--signal=USR2@120``,
which submitit's sbatch file asks for (``slurm_signal_delay_s``; submitit's signal is
``SUBMITIT_PREEMPT_SIGNAL``, default USR2, which :func:`requeue_signal` reads, so the training
process listens for exactly the signal submitit requested) and ``scripts/sbatch_pretrain.sh``
asks for too. Who does what:

* the training process (:class:`RequeueOnSignal`, a Lightning callback that
  ``experiments.pretrain.build_trainer`` adds under SLURM) only sets a flag in its signal handler.
  At the next optimizer step (every rank at the same one: DDP ranks agree through one all-reduce
  every ``check_every_n_steps`` steps) it saves ``<run dir>/hpc_ckpt_<n>.ckpt`` (Lightning's
  name, which ``run_pretrain`` resumes from), rank 0 runs ``scontrol requeue <job>`` and every
  rank exits with :data:`REQUEUE_EXIT`. Lightning's own handler (``SLURMEnvironment(auto_requeue=
  True)``) is off: it saves *inside* the signal handler, i.e. at any bytecode (mid-backward, or
  in DDP at different points on different ranks before its barrier), see Lightning issue #21406;
* the submitit worker (``experiments.launchers.SubmititJob``) replaces submitit's own handler,
  which would requeue and kill the run at once (``subprocess.call`` kills its child when the
  handler raises SystemExit), with one that forwards the signal to the running child run and
  leaves the requeue to it. Only when no pretraining run took the signal (it came during a
  transfer run or between runs) does the worker requeue, through the same :func:`requeue_job`.

So each signal leads to exactly one ``scontrol requeue``; the requeued job reruns the same
command, and the run resumes from the newest of ``last.ckpt`` and ``hpc_ckpt_*.ckpt``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from pathlib import Path
from types import FrameType

from lightning.pytorch.callbacks import Callback

REQUEUE_EXIT = 75  # EX_TEMPFAIL: checkpointed and requeued; not a failure, not complete


def requeue_signal() -> signal.Signals:
    """The signal submitit's sbatch file asks SLURM for (``#SBATCH --signal=USR2@<delay>``)."""
    from submitit.slurm.slurm import SlurmJobEnvironment

    return signal.Signals["SIG" + SlurmJobEnvironment.USR_SIG]


def slurm_job_id() -> str:
    """This job's id as ``scontrol requeue`` wants it (``<array job>_<task>`` in an array)."""
    array_job = os.environ.get("SLURM_ARRAY_JOB_ID")
    if array_job is not None:
        return f"{array_job}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    return os.environ["SLURM_JOB_ID"]


def requeue_job() -> None:
    """``scontrol requeue`` this job: SLURM ends it and later reruns the same command."""
    subprocess.run(["scontrol", "requeue", slurm_job_id()], check=True, timeout=60)


def hpc_checkpoints(run_dir: Path) -> list[Path]:
    """``hpc_ckpt_<n>.ckpt`` files of a run, oldest (lowest n) first."""

    def number(p: Path) -> int:
        return int(p.stem.rsplit("_", 1)[1])

    return sorted(run_dir.glob("hpc_ckpt_*.ckpt"), key=number)


def next_hpc_checkpoint(run_dir: Path) -> Path:
    existing = hpc_checkpoints(run_dir)
    n = int(existing[-1].stem.rsplit("_", 1)[1]) + 1 if existing else 1
    return run_dir / f"hpc_ckpt_{n}.ckpt"


class RequeueOnSignal(Callback):
    """On the requeue signal: checkpoint at the next optimizer step, requeue, exit 75."""

    def __init__(self, signum: signal.Signals | None = None, check_every_n_steps: int = 10):
        self.signum = signum if signum is not None else requeue_signal()
        self.check_every_n_steps = max(1, check_every_n_steps)  # DDP only: an all-reduce
        self.requested = False
        self._previous = None
        self._step = -1

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True  # nothing else happens inside a signal handler

    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage == "fit" and threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(self.signum, self._handler)

    def teardown(self, trainer, pl_module, stage: str) -> None:
        if self._previous is not None:
            signal.signal(self.signum, self._previous)
            self._previous = None

    def on_train_start(self, trainer, pl_module) -> None:
        self._step = trainer.global_step

    def on_fit_end(self, trainer, pl_module) -> None:
        """Training is over: drop the requeue checkpoints. Under SLURM a later ``validate()``
        without ``ckpt_path`` would load the newest ``hpc_ckpt_*.ckpt`` (Lightning's "hpc"
        default) and evaluate those old weights instead of the final ones."""
        if trainer.is_global_zero:
            for old in hpc_checkpoints(Path(trainer.default_root_dir)):
                old.unlink(missing_ok=True)
        trainer.strategy.barrier("requeue-cleanup")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if step == self._step:  # inside a gradient accumulation: no optimizer step yet
            return
        self._step = step
        if trainer.world_size > 1:
            if step % self.check_every_n_steps:
                return
            stop = trainer.strategy.reduce_boolean_decision(self.requested, all=False)
        else:
            stop = self.requested
        if stop:
            self._checkpoint_and_requeue(trainer)

    def _checkpoint_and_requeue(self, trainer) -> None:
        run_dir = Path(trainer.default_root_dir)
        path = trainer.strategy.broadcast(next_hpc_checkpoint(run_dir))
        trainer.save_checkpoint(path, weights_only=False)  # every rank calls it; rank 0 writes
        if trainer.is_global_zero:
            for old in hpc_checkpoints(run_dir):
                if old != path:
                    old.unlink(missing_ok=True)
            print(f"pretrain: requeue signal: saved {path} at step {trainer.global_step}")
            requeue_job()
        trainer.strategy.barrier("requeue")
        raise SystemExit(REQUEUE_EXIT)
