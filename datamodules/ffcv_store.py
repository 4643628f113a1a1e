"""FFCV .beton files for this project: field layouts and writers. Reading them (loader
pipelines, label rows) is :mod:`datamodules.ffcv_read`.

Hashtag files hold, per image: ``image`` (RGBImageField), ``labels`` (NDArrayField int32 of
width ``max_labels`` padded with -1: variable-length hashtag ids in a fixed-width slot),
``num_labels`` (IntField: ids kept, <= max_labels) and ``sample_id`` (IntField: the row in the
prepared directory's ``ids.txt``). Target files hold ``image`` and ``label`` (IntField).

Writers go through a temporary name and rename, so a file that exists is complete. FFCV's
``DatasetWriter`` forks its workers and can deadlock in a process that already ran a
``Loader`` (numba threads held across ``fork``): call the writers through
:func:`run_in_fresh_process`. Two further guards keep a bad input from hanging a write: an item
that raises is recorded and fails the write with its traceback (FFCV itself would wait forever
for the missing sample), and a watchdog interrupts the write when every worker died.
"""

from __future__ import annotations

import _thread
import concurrent.futures
import multiprocessing
import os
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from datamodules.data_config import WRITE_MODES
from datamodules.errors import UserInputError

# re-exported: tests/test_prepare.py imports read_labels from here
from datamodules.ffcv_read import read_labels as read_labels

# write_mode=smart: JPEG only for images whose raw pixels exceed this many bytes (a 96x96 RGB
# image). Small images are cheaper to copy raw than to decode, and cost little disk.
SMART_THRESHOLD_BYTES = 96 * 96 * 3
PAD_LABEL = -1
_PLACEHOLDER_IMAGE = np.zeros((8, 8, 3), dtype=np.uint8)
_WATCHDOG_GRACE_S = 30.0


# --------------------------------------------------------------------------------------------
# fields
# --------------------------------------------------------------------------------------------
def _image_field(max_resolution: int, jpeg_quality: int, write_mode: str):
    from ffcv.fields import RGBImageField

    if write_mode not in WRITE_MODES:
        raise UserInputError(
            f"data.write.mode={write_mode!r} is not supported; use one of {', '.join(WRITE_MODES)}"
        )
    if not 1 <= int(jpeg_quality) <= 100:
        raise UserInputError(f"data.write.jpeg_quality={jpeg_quality} must be within 1..100")
    if int(max_resolution) < 1:
        raise UserInputError(f"max_resolution={max_resolution} must be a positive pixel count")
    return RGBImageField(
        write_mode=write_mode,
        max_resolution=int(max_resolution),
        jpeg_quality=int(jpeg_quality),
        smart_threshold=SMART_THRESHOLD_BYTES if write_mode == "smart" else None,
    )


def hashtag_fields(max_labels: int, max_resolution: int, jpeg_quality: int, write_mode: str):
    """The hashtag .beton layout (field order matters to FFCV: it is the tuple order)."""
    from ffcv.fields import IntField, NDArrayField

    if int(max_labels) < 1:
        raise UserInputError(f"data.write.max_labels={max_labels} must be at least 1")
    return {
        "image": _image_field(max_resolution, jpeg_quality, write_mode),
        "labels": NDArrayField(np.dtype("int32"), (int(max_labels),)),
        "num_labels": IntField(),
        "sample_id": IntField(),
    }


def target_fields(max_resolution: int, jpeg_quality: int, write_mode: str):
    """The target (transfer) .beton layout."""
    from ffcv.fields import IntField

    return {
        "image": _image_field(max_resolution, jpeg_quality, write_mode),
        "label": IntField(),
    }


# --------------------------------------------------------------------------------------------
# writers
# --------------------------------------------------------------------------------------------
def _check_rgb(rgb: Any, index: int) -> np.ndarray:
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3:
        raise ValueError(
            f"item {index}: image must be an RGB uint8 HxWx3 numpy array, got "
            f"{type(rgb).__name__} {getattr(rgb, 'dtype', '')} {getattr(rgb, 'shape', '')}"
        )
    if rgb.shape[2] != 3 or rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise ValueError(f"item {index}: image shape {rgb.shape} is not HxWx3")
    return np.ascontiguousarray(rgb)


class _ErrorLog:
    """Records the first errors raised by items inside FFCV's forked workers (a file: it works
    across processes without any shared state)."""

    def __init__(self, path: Path):
        self.path = path

    def record(self, index: int) -> None:
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(f"item {index}:\n{traceback.format_exc()}\x00")

    def errors(self) -> list[str]:
        if not self.path.exists():
            return []
        return [e for e in self.path.read_text(encoding="utf-8").split("\x00") if e.strip()]


class _HashtagRows:
    """Adapts (rgb, label_ids, sample_id) items to the hashtag field tuple, truncating labels to
    ``max_labels`` and counting what was dropped (shared counters survive FFCV's fork)."""

    def __init__(self, items: Sequence, max_labels: int, errors: _ErrorLog):
        self.items = items
        self.max_labels = max_labels
        self.errors = errors
        # [labels_total, labels_dropped, images_truncated, images_without_labels]
        self.counters = multiprocessing.Array("q", 4)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        try:
            rgb, label_ids, sample_id = self.items[index]
            rgb = _check_rgb(rgb, index)
            ids = np.asarray(label_ids, dtype=np.int64).reshape(-1)
            if ids.size and (ids.min() < 0 or ids.max() >= np.iinfo(np.int32).max):
                raise ValueError(f"item {index}: label ids must be within 0..2^31-2, got {ids}")
            kept = ids[: self.max_labels]
            labels = np.full(self.max_labels, PAD_LABEL, dtype=np.int32)
            labels[: kept.size] = kept
            with self.counters.get_lock():
                self.counters[0] += ids.size
                self.counters[1] += ids.size - kept.size
                self.counters[2] += int(ids.size > kept.size)
                self.counters[3] += int(ids.size == 0)
            return rgb, labels, int(kept.size), int(sample_id)
        except Exception:
            self.errors.record(index)
            return _PLACEHOLDER_IMAGE, np.full(self.max_labels, PAD_LABEL, np.int32), 0, -1

    def stats(self) -> dict[str, int]:
        total, dropped, truncated, empty = list(self.counters)
        return {
            "labels_total": int(total),
            "labels_dropped": int(dropped),
            "images_truncated": int(truncated),
            "images_without_labels": int(empty),
        }


class _TargetRows:
    """Adapts (rgb, label) items to the target field tuple."""

    def __init__(self, items: Sequence, errors: _ErrorLog):
        self.items = items
        self.errors = errors

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        try:
            rgb, label = self.items[index]
            label = int(label)
            if label < 0:
                raise ValueError(f"item {index}: class label must be >= 0, got {label}")
            return _check_rgb(rgb, index), label
        except Exception:
            self.errors.record(index)
            return _PLACEHOLDER_IMAGE, -1


def _watchdog(stop: threading.Event, fired: threading.Event) -> None:
    """Interrupt the main thread when FFCV's writer workers all died but the writer still waits
    for their samples (it would poll forever). Children are this process's multiprocessing
    children, which during a write are FFCV's workers."""
    seen_children = False
    idle_since = None
    while not stop.wait(1.0):
        alive = multiprocessing.active_children()
        if alive:
            seen_children, idle_since = True, None
            continue
        if not seen_children:
            continue
        idle_since = idle_since or time.monotonic()
        if time.monotonic() - idle_since > _WATCHDOG_GRACE_S:
            fired.set()
            _thread.interrupt_main()
            return


def _write(path: Path, fields: dict, rows, num_workers: int, errors: _ErrorLog) -> dict:
    from ffcv.writer import DatasetWriter

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    workers = int(num_workers) if int(num_workers) > 0 else (os.cpu_count() or 1)
    workers = max(1, min(workers, len(rows)))
    stop, fired = threading.Event(), threading.Event()
    watchdog = threading.Thread(target=_watchdog, args=(stop, fired), daemon=True)
    start = time.perf_counter()
    try:
        watchdog.start()
        try:
            DatasetWriter(str(tmp), fields, num_workers=workers).from_indexed_dataset(
                rows, chunksize=max(1, min(100, len(rows) // (4 * workers) or 1))
            )
        except KeyboardInterrupt:
            if fired.is_set():
                raise RuntimeError(
                    f"writing {path.name}: every FFCV writer worker exited before all "
                    f"{len(rows)} samples were written (killed for memory?)"
                ) from None
            raise
        finally:
            stop.set()
        failures = errors.errors()
        if failures:
            raise RuntimeError(
                f"writing {path.name}: {len(failures)} item(s) raised; first:\n{failures[0]}"
            )
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
        errors.path.unlink(missing_ok=True)
    return {
        "file": path.name,
        "num_images": len(rows),
        "bytes": path.stat().st_size,
        "write_s": round(time.perf_counter() - start, 3),
    }


def _check_items(items: Sequence, what: str) -> None:
    if not hasattr(items, "__getitem__") or not hasattr(items, "__len__"):
        raise TypeError(f"{what}: items must be indexable and sized, got {type(items).__name__}")
    if len(items) == 0:
        raise UserInputError(f"{what}: no images to write (the selection is empty)")


def write_hashtag_beton(
    path: str | Path,
    items: Sequence,
    *,
    max_labels: int,
    max_resolution: int,
    jpeg_quality: int = 90,
    write_mode: str = "jpg",
    num_workers: int = 0,
) -> dict:
    """Write a hashtag .beton from ``items[i] = (rgb uint8 HxWx3, label_ids, sample_id)``.

    Label ids beyond ``max_labels`` (in the order given; :meth:`Vocabulary.label` sorts them by
    id) are dropped and counted. Images larger than ``max_resolution`` on their longer side are
    downscaled by FFCV. Returns stats: file, num_images, bytes, write_s, labels_total,
    labels_dropped, images_truncated, images_without_labels, max_labels, write_mode.
    ``num_workers <= 0`` uses every core.
    """
    _check_items(items, f"write_hashtag_beton({Path(path).name})")
    fields = hashtag_fields(max_labels, max_resolution, jpeg_quality, write_mode)
    errors = _ErrorLog(Path(path).with_name(f".{Path(path).name}.errors-{os.getpid()}"))
    errors.path.unlink(missing_ok=True)
    rows = _HashtagRows(items, int(max_labels), errors)
    stats = _write(Path(path), fields, rows, num_workers, errors)
    return {**stats, **rows.stats(), "max_labels": int(max_labels), "write_mode": write_mode}


def write_target_beton(
    path: str | Path,
    items: Sequence,
    *,
    max_resolution: int,
    jpeg_quality: int = 90,
    write_mode: str = "jpg",
    num_workers: int = 0,
) -> dict:
    """Write a target .beton from ``items[i] = (rgb uint8 HxWx3, class label int)``.

    Returns stats: file, num_images, bytes, write_s, write_mode.
    """
    _check_items(items, f"write_target_beton({Path(path).name})")
    fields = target_fields(max_resolution, jpeg_quality, write_mode)
    errors = _ErrorLog(Path(path).with_name(f".{Path(path).name}.errors-{os.getpid()}"))
    errors.path.unlink(missing_ok=True)
    stats = _write(Path(path), fields, _TargetRows(items, errors), num_workers, errors)
    return {**stats, "write_mode": write_mode}


def run_in_fresh_process(fn: Callable, *args, **kwargs):
    """Run ``fn(*args, **kwargs)`` in a freshly spawned process; return its result or re-raise
    its exception here (with the child's traceback attached as the cause).

    FFCV's DatasetWriter forks; forking a process that already ran a Loader (numba's thread
    pool) can deadlock, so writers always run in a process that never loaded anything.
    ``fn``, its arguments and its result must be picklable (module-level functions).
    """
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(_call_with_fork_default, fn, args, kwargs).result()


def _call_with_fork_default(fn: Callable, args: tuple, kwargs: dict):
    """A spawned child inherits its parent's start method ("spawn"); FFCV's writer would then
    spawn its workers too, each re-importing torch and ffcv (10x slower on small files). The
    child never ran a Loader, so forking there is safe."""
    if os.name == "posix":
        multiprocessing.set_start_method("fork", force=True)
    return fn(*args, **kwargs)
