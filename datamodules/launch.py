"""Launchers: one vocabulary for ``prepare`` and ``sweep``, and the one submitit executor helper.

The names (:data:`LAUNCHERS`) mean the same in every command:

* ``local``: on this machine, without submitit. prepare: a pool of spawned processes (the
  default); sweep: each job in a fresh process, ``--jobs N`` at once (a thread pool in the
  sweep's own process starts them).
* ``submitit-local``: submitit's ``LocalExecutor`` (the submitit path without a cluster).
* ``slurm``: a SLURM job array through submitit's ``AutoExecutor``.

The sweep also has ``wandb-export``, which writes a ``wandb sweep`` config instead of launching.
prepare's old names were ``process`` (now ``local``) and ``local`` (then submitit's
LocalExecutor, now ``submitit-local``); ``process`` is refused with an error naming ``local``.

:func:`submitit_executor` builds the executor for both; :func:`slurm_parameters` maps the
settings each side has (prepare's options, the sweep spec's ``slurm:``) to AutoExecutor's
parameter names. :func:`run_each` runs prepare's scan and its .beton writes: one picklable
function over a list of argument tuples, each call in a process of its own.
``launcher_options`` there: ``workers`` (processes at once, ``local``), ``timeout_min``,
``cpus_per_task``, ``array_parallelism``, ``partition`` (SLURM).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from datamodules.errors import UserInputError

LAUNCHERS = ("local", "submitit-local", "slurm")
RENAMED = {"process": "local"}  # prepare's old name -> the name with the same meaning now


def launcher_problem(name: str, choices: Sequence[str] = LAUNCHERS) -> str | None:
    """Why ``name`` is not a launcher (one line), or None when it is one of ``choices``."""
    if name in choices:
        return None
    if name in RENAMED:
        new = RENAMED[name]
        return (
            f"launcher {name!r} is now called {new!r} (the same process pool): use --launcher {new}"
        )
    return f"launcher {name!r} is not known; use one of {', '.join(choices)}"


def check_launcher(name: str, choices: Sequence[str] = LAUNCHERS) -> None:
    """Raise :class:`UserInputError` (one line) unless ``name`` is one of ``choices``."""
    problem = launcher_problem(name, choices)
    if problem:
        raise UserInputError(problem)


def launcher_arg(value: str) -> str:
    """argparse ``type`` for ``--launcher`` (with ``choices=``): a renamed value fails with a
    line naming its new name; any other value is left to ``choices``."""
    if value in RENAMED:
        raise argparse.ArgumentTypeError(launcher_problem(value))
    return value


def _fork_default() -> None:
    """A spawned child inherits "spawn" as its start method; FFCV's writer would then spawn its
    workers too, each re-importing torch and ffcv. These children never ran a Loader, so forking
    there is safe (see ``ffcv_store.run_in_fresh_process``)."""
    if os.name == "posix":
        multiprocessing.set_start_method("fork", force=True)


def slurm_parameters(
    *,
    timeout_min: int,
    cpus_per_task: int,
    array_parallelism: int,
    partition: str = "",
    account: str = "",
    qos: str = "",
    constraint: str = "",
    mem_gb: int = 0,
    name: str | None = None,
    nodes: int | None = None,
    gpus_per_node: int | None = None,
    signal_delay_s: int | None = None,
    additional: dict | None = None,
) -> dict[str, Any]:
    """AutoExecutor parameters. Empty strings, ``mem_gb=0`` and ``None`` are left to submitit
    (the partition's defaults); ``gpus_per_node`` also sets one task per GPU (at least one)."""
    params: dict[str, Any] = {}
    if name is not None:
        params["name"] = name
    if nodes is not None:
        params["nodes"] = nodes
    if gpus_per_node is not None:
        params["gpus_per_node"] = gpus_per_node
        params["tasks_per_node"] = max(1, gpus_per_node)
    params["cpus_per_task"] = cpus_per_task
    params["timeout_min"] = timeout_min
    params["slurm_array_parallelism"] = array_parallelism
    if signal_delay_s is not None:
        params["slurm_signal_delay_s"] = signal_delay_s
    if mem_gb:
        params["mem_gb"] = mem_gb
    for key, value in (
        ("partition", partition),
        ("account", account),
        ("qos", qos),
        ("constraint", constraint),
    ):
        if value:
            params[f"slurm_{key}"] = value
    if additional:
        params["slurm_additional_parameters"] = dict(additional)
    return params


def submitit_executor(launcher: str, folder: Path | str, parameters: dict[str, Any]):
    """A submitit executor logging under ``folder``: ``submitit-local`` = LocalExecutor (only
    ``parameters["timeout_min"]`` applies), ``slurm`` = AutoExecutor on SLURM with every
    parameter (see :func:`slurm_parameters`). No SLURM here raises a one-line UserInputError."""
    import submitit

    if launcher == "submitit-local":
        executor = submitit.LocalExecutor(folder=folder)
        executor.update_parameters(timeout_min=int(parameters["timeout_min"]))
        return executor
    if launcher != "slurm":
        raise ValueError(f"launcher {launcher!r} has no submitit executor")
    try:
        executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
    except RuntimeError as exc:  # submitit: 'Could not detect "srun"'
        raise UserInputError(
            f"--launcher slurm needs a SLURM cluster ({exc}); here use --launcher local "
            "or submitit-local"
        ) from None
    executor.update_parameters(**parameters)
    return executor


def _prepare_parameters(launcher: str, options: dict) -> dict[str, Any]:
    """prepare's options as executor parameters (its defaults: 60 min locally, 240 on SLURM)."""
    if launcher != "slurm":
        return {"timeout_min": int(options.get("timeout_min", 60))}
    return slurm_parameters(
        timeout_min=int(options.get("timeout_min", 240)),
        cpus_per_task=int(options.get("cpus_per_task", 4)),
        array_parallelism=int(options.get("array_parallelism", 256)),
        partition=options.get("partition") or "",
    )


def run_each(
    fn: Callable,
    calls: Sequence[tuple],
    *,
    launcher: str,
    options: dict,
    folder: Path,
    desc: str,
    progress: bool,
    fork_children: bool = False,
) -> list:
    """``[fn(*args) for args in calls]``, each call in another process, results in call order.

    ``folder``: submitit's log folder (removed after success). ``fork_children``: pool workers
    use fork as their own start method (for FFCV's writer). A failed call raises here (submitit:
    ``FailedJobError`` with the job's traceback)."""
    check_launcher(launcher)
    results: list = [None] * len(calls)
    bar = tqdm(total=len(calls), desc=desc, disable=not progress, unit="job")
    try:
        if launcher == "local":
            workers = min(len(calls), int(options.get("workers") or os.cpu_count() or 1))
            context = multiprocessing.get_context("spawn")
            init = _fork_default if fork_children else None
            with concurrent.futures.ProcessPoolExecutor(
                max(1, workers), mp_context=context, initializer=init
            ) as pool:
                futures = {pool.submit(fn, *args): i for i, args in enumerate(calls)}
                for fut in concurrent.futures.as_completed(futures):
                    results[futures[fut]] = fut.result()
                    bar.update()
            return results
        executor = submitit_executor(launcher, folder, _prepare_parameters(launcher, options))
        jobs = executor.map_array(fn, *[list(col) for col in zip(*calls)])
        for i, job in enumerate(jobs):
            results[i] = job.result()
            bar.update()
        shutil.rmtree(folder, ignore_errors=True)
        return results
    finally:
        bar.close()
