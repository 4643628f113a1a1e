"""Run one picklable function over a list of argument tuples, each call in a process of its own:
a local pool of spawned processes (``process``), submitit's LocalExecutor (``local``) or a SLURM
job array (``slurm``). prepare's scan and its .beton writes both go through :func:`run_each`.

``launcher_options``: ``workers`` (processes at once, ``process`` launcher), ``timeout_min``,
``cpus_per_task``, ``array_parallelism``, ``partition`` (SLURM).
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from tqdm.auto import tqdm

LAUNCHERS = ("process", "local", "slurm")


def _fork_default() -> None:
    """A spawned child inherits "spawn" as its start method; FFCV's writer would then spawn its
    workers too, each re-importing torch and ffcv. These children never ran a Loader, so forking
    there is safe (see ``ffcv_store.run_in_fresh_process``)."""
    if os.name == "posix":
        multiprocessing.set_start_method("fork", force=True)


def submitit_executor(folder: Path, launcher: str, options: dict):
    """A submitit executor: LocalExecutor (``local``) or a SLURM array (``slurm``)."""
    import submitit

    if launcher == "local":
        executor = submitit.LocalExecutor(folder=str(folder))
        executor.update_parameters(timeout_min=int(options.get("timeout_min", 60)))
        return executor
    executor = submitit.AutoExecutor(folder=str(folder), cluster="slurm")
    params = {
        "timeout_min": int(options.get("timeout_min", 240)),
        "cpus_per_task": int(options.get("cpus_per_task", 4)),
        "slurm_array_parallelism": int(options.get("array_parallelism", 256)),
    }
    if options.get("partition"):
        params["slurm_partition"] = options["partition"]
    executor.update_parameters(**params)
    return executor


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
    if launcher not in LAUNCHERS:
        raise ValueError(f"launcher {launcher!r}: use one of {', '.join(LAUNCHERS)}")
    results: list = [None] * len(calls)
    bar = tqdm(total=len(calls), desc=desc, disable=not progress, unit="job")
    try:
        if launcher == "process":
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
        executor = submitit_executor(folder, launcher, options)
        jobs = executor.map_array(fn, *[list(col) for col in zip(*calls)])
        for i, job in enumerate(jobs):
            results[i] = job.result()
            bar.update()
        shutil.rmtree(folder, ignore_errors=True)
        return results
    finally:
        bar.close()
