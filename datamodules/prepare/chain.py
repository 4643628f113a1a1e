"""The chain: ``ensure_prepared`` plans the four stage folders from the config and runs (or
reuses) each in turn; ``prepared_dir`` names the final folder without building anything."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datamodules import dedup, hashtags
from datamodules.dedup_targets import DEFAULT_DEDUP_TARGETS
from datamodules.errors import UserInputError
from datamodules.io import build_folder_atomically
from datamodules.launch import check_launcher
from datamodules.prepare.cache import _log, _source_fingerprint, stage_key
from datamodules.prepare.dedup_stage import _build_dedup
from datamodules.prepare.labels import _build_vocab
from datamodules.prepare.manifest import format_summary
from datamodules.prepare.scan import build_scan_stage
from datamodules.prepare.write import _build_prepared

if TYPE_CHECKING:
    from datamodules.data_config import DataConfig

# data.source fields only the webdataset source reads: its scan key alone hashes them, so the
# keys of the other sources stayed what they were when these fields were added (and a change
# to them re-scans no other source)
WEBDATASET_ONLY = ("webdataset", "webdataset_tags_field", "webdataset_caption_field")


def prepared_dir(data_cfg: DataConfig, seed: int) -> Path:
    """Where ``ensure_prepared`` puts (or finds) the prepared data for this config and seed."""
    return _plan(data_cfg, seed)["final"]


def _plan(data_cfg: Any, seed: int) -> dict:
    """Each stage's folder: the hash of its own section (``data.loading`` is in no key) and the
    keys of the stages it reads, so a change re-runs its stage and the ones after it only."""
    root = Path(data_cfg.cache_dir).expanduser() / "prepared"
    source = data_cfg.source
    omit = () if source.name == "webdataset" else WEBDATASET_ONLY
    scan_key = stage_key(data_cfg, "source", _source_fingerprint(source), omit=omit)
    vocab_key = stage_key(data_cfg, "vocab", scan_key, hashtags.CATEGORY_NAME_RULE)
    dedup_key = stage_key(data_cfg, "dedup", scan_key, seed, dedup.MAX_THUMB_MAD)
    final_key = stage_key(data_cfg, "write", vocab_key, dedup_key, seed)
    return {
        "scan": root / "stages" / f"scan-{scan_key}",
        "vocab": root / "stages" / f"vocab-{vocab_key}",
        "dedup": root / "stages" / f"dedup-{dedup_key}",
        "final": root / f"{source.name}-{final_key}",
    }


def _check(data_cfg: Any, num_shards: int, launcher: str) -> None:
    if data_cfg.source.name not in DEFAULT_DEDUP_TARGETS:
        raise UserInputError(
            f"data.source.name={data_cfg.source.name!r} is not known; use one of "
            f"{', '.join(DEFAULT_DEDUP_TARGETS)}"
        )
    check_launcher(launcher)
    if num_shards < 1:
        raise UserInputError(f"--num-shards={num_shards} must be >= 1")
    hamming = int(data_cfg.dedup.hamming)
    if hamming < 0 or hamming > 64:
        raise UserInputError(f"data.dedup.hamming={hamming} must be within 0..64")


def ensure_prepared(
    data_cfg: DataConfig,
    seed: int,
    progress: bool = True,
    *,
    num_shards: int | None = None,
    launcher: str = "local",
    launcher_options: dict | None = None,
    summary: bool | None = None,
) -> Path:
    """The prepared folder for ``data_cfg`` and ``seed``, building the stages that are missing.

    ``num_shards`` splits the scan (decode, hash, count tags) into that many source shards;
    ``None`` = one per CPU core (at most 8). ``launcher`` (``datamodules.launch.LAUNCHERS``):
    ``local`` (a process pool on this machine; ``launcher_options["workers"]`` at once),
    ``submitit-local`` (submitit's LocalExecutor) or ``slurm`` (a submitit job array;
    ``launcher_options``: partition, timeout_min, cpus_per_task, array_parallelism). The old
    name ``process`` is refused with an error naming ``local``.
    The shard count does not change any output, so it is not part of any key. ``summary``
    (default: ``progress``) prints :func:`format_summary` to stderr after a build.
    """
    if num_shards is None:
        num_shards = min(8, os.cpu_count() or 1)
    _check(data_cfg, num_shards, launcher)
    options = dict(launcher_options or {})
    plan = _plan(data_cfg, seed)
    final = plan["final"]
    if (final / "manifest.json").is_file():
        return final
    stages: dict[str, dict] = {}

    def stage(name: str, build: Callable[[Path], None]) -> Path:
        path = plan[name]
        reused = path.is_dir()
        start = time.perf_counter()
        if not reused:
            build_folder_atomically(path, build)
        seconds = round(time.perf_counter() - start, 3)
        stages[name] = {"key": path.name, "reused": reused, "seconds": seconds}
        _log(path.parent.parent / "stage_log.jsonl", name, path.name, reused, seconds)
        return path

    scan_dir = stage(
        "scan", lambda out: build_scan_stage(data_cfg, out, num_shards, launcher, progress, options)
    )
    stage("vocab", lambda out: _build_vocab(data_cfg, scan_dir, out, progress))
    stage("dedup", lambda out: _build_dedup(data_cfg, seed, scan_dir, out, progress))
    stages["write"] = {"key": final.name, "reused": False, "seconds": 0.0}
    build_folder_atomically(
        final,
        lambda out: _build_prepared(data_cfg, seed, plan, stages, out, progress, launcher, options),
    )
    _log(final.parent / "stage_log.jsonl", "write", final.name, False, stages["write"]["seconds"])
    if progress if summary is None else summary:
        print(format_summary(final), file=sys.stderr)
    return final
