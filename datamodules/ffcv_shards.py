"""One FFCV ``Loader`` over several .beton shards of one layout: :class:`ShardedLoader`.

FFCV 1.0.2's Loader reads one file: it memory-maps it as one uint8 array and its compiled
pipeline reads every field through absolute byte offsets into that array (the ``data_ptr`` /
``ptr`` columns of the metadata and the allocation table). One Loader per shard would pay
FFCV's compile once per shard (measured in ``python -m experiments bench loader --shards``:
``compile_s``), and a batch could not mix shards. Instead the shards are mapped back to back
into one contiguous span of virtual memory (an anonymous ``PROT_NONE`` reservation, each file
mapped over it read-only with ``MAP_FIXED`` at a page-aligned base: no copy, the page cache is
shared), and the Loader gets the shards' metadata and allocation tables concatenated with every
pointer shifted by its shard's base. FFCV's own Loader, traversal orders, pipelines and
EpochIterator then run unchanged, compiled once: row ``r`` of the concatenation is row
``r - first[s]`` of shard ``s``, so with shards written in sample-id order the global row is
the sample id, exactly as in a one-file preparation.

Linux only (FFCV is). Only the OS-cache memory manager (``os_cache=True``) is supported.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import weakref
from collections.abc import Sequence
from pathlib import Path

import numpy as np

_PROT_NONE, _PROT_READ = 0, 1
_MAP_SHARED, _MAP_PRIVATE, _MAP_FIXED, _MAP_ANON, _MAP_NORESERVE = 0x01, 0x02, 0x10, 0x20, 0x4000
_MAP_FAILED = ctypes.c_void_p(-1).value


def _libc():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_long,
    ]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    return libc


def _check(address, what: str) -> int:
    if address is None or address == _MAP_FAILED:
        err = ctypes.get_errno()
        raise OSError(err, f"mmap {what}: {os.strerror(err)}")
    return int(address)


def map_concatenated(paths: Sequence[str | Path]) -> tuple[np.ndarray, np.ndarray]:
    """The files mapped read-only back to back into one uint8 array, and each file's offset in
    it (int64 [len(paths)], page-aligned). The mapping is released when the array and every
    view of it are gone."""
    page = mmap.PAGESIZE
    sizes = [os.path.getsize(p) for p in paths]
    spans = [-(-s // page) * page for s in sizes]
    bases = np.concatenate([[0], np.cumsum(spans)[:-1]]).astype(np.int64)
    total = max(int(sum(spans)), page)
    libc = _libc()
    flags = _MAP_PRIVATE | _MAP_ANON | _MAP_NORESERVE
    start = _check(libc.mmap(None, total, _PROT_NONE, flags, -1, 0), "reserve")
    try:
        for path, size, base in zip(paths, sizes, bases):
            if not size:
                continue
            fd = os.open(path, os.O_RDONLY)
            try:
                got = libc.mmap(
                    start + int(base), size, _PROT_READ, _MAP_SHARED | _MAP_FIXED, fd, 0
                )
                _check(got, str(path))
            finally:
                os.close(fd)
    except BaseException:
        libc.munmap(start, total)
        raise
    buffer = (ctypes.c_uint8 * total).from_address(start)
    weakref.finalize(buffer, libc.munmap, start, total)
    array = np.frombuffer(buffer, dtype=np.uint8)  # keeps ``buffer`` (the owner) alive
    return array, bases


def _pointer_columns(handlers: dict) -> list[tuple[str, str | None]]:
    """(metadata column, sub-field) of every absolute file offset in the sample metadata."""
    from ffcv.fields import BytesField, FloatField, IntField, NDArrayField, RGBImageField

    columns = []
    for index, (name, handler) in enumerate(handlers.items()):
        column = f"f{index}"
        if isinstance(handler, RGBImageField):
            columns.append((column, "data_ptr"))
        elif isinstance(handler, NDArrayField | BytesField):
            columns.append((column, "ptr" if isinstance(handler, BytesField) else None))
        elif not isinstance(handler, IntField | FloatField):
            raise TypeError(f"field {name}: {type(handler).__name__} is not supported in shards")
    return columns


class ConcatReader:
    """The attributes of ``ffcv.reader.Reader`` the Loader uses, over several files of one
    layout (field names and types must agree; the caller checks the vocabulary)."""

    def __init__(self, paths: Sequence[str | Path], first=None):
        from ffcv.reader import Reader

        self.paths = [str(p) for p in paths]
        readers = [
            first if first is not None and i == 0 else Reader(p) for i, p in enumerate(self.paths)
        ]
        head = readers[0]
        for path, reader in zip(self.paths[1:], readers[1:]):
            if reader.field_names != head.field_names or reader.metadata_type != head.metadata_type:
                raise ValueError(f"{path}: fields {reader.field_names} differ from {self.paths[0]}")
        self.handlers, self.field_names = head.handlers, head.field_names
        self.metadata_type, self.page_size, self.header = (
            head.metadata_type,
            head.page_size,
            head.header,
        )
        self.num_fields = head.num_fields
        self.counts = np.asarray([int(r.num_samples) for r in readers], np.int64)
        self.first = np.concatenate([[0], np.cumsum(self.counts)[:-1]]).astype(np.int64)
        self.num_samples = int(self.counts.sum())
        self.data, self.bases = map_concatenated(self.paths)
        metadata = np.concatenate([r.metadata for r in readers])
        alloc = np.concatenate([r.alloc_table for r in readers])
        row_shift = np.repeat(self.bases.astype(np.uint64), self.counts)
        for column, sub in _pointer_columns(self.handlers):
            target = metadata[column] if sub is None else metadata[column][sub]
            target += row_shift  # a view: shifts the metadata in place
        alloc_counts = [len(r.alloc_table) for r in readers]
        alloc["ptr"] += np.repeat(self.bases.astype(np.uint64), alloc_counts)
        alloc["sample_id"] += np.repeat(self.first.astype(np.uint64), alloc_counts)
        metadata.setflags(write=False)
        alloc.setflags(write=False)
        self.metadata, self.alloc_table = metadata, alloc

    @property
    def file_name(self) -> str:
        return self.paths[0]


class _ConcatContext:
    """OSCacheContext's interface with the concatenated mapping as the state's byte array."""

    def __init__(self, manager):
        self.manager = manager

    @property
    def state(self):
        return (self.manager.reader.data, self.manager.ptrs, self.manager.sizes)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def start_batch(self, batch: int) -> None:
        pass


def _concat_manager(reader: ConcatReader):
    """An OSCacheManager over the concatenation, without the base class's per-sample Python
    page maps (only the process cache uses them; they would cost ~200 bytes per image)."""
    from ffcv.memory_managers import OSCacheManager

    class ConcatCacheManager(OSCacheManager):
        def __init__(self, reader):
            self.reader = reader
            order = np.argsort(reader.alloc_table["ptr"], kind="stable")
            self.ptrs = np.ascontiguousarray(reader.alloc_table["ptr"][order])
            self.sizes = np.ascontiguousarray(reader.alloc_table["size"][order])
            self.context = _ConcatContext(self)

    return ConcatCacheManager(reader)


def sharded_loader(paths: Sequence[str | Path], **loader_kwargs):
    """An FFCV ``Loader`` reading ``paths`` as one dataset (rows in file order). Keyword
    arguments are the Loader's; ``os_cache`` is forced to True."""
    from ffcv.loader import Loader

    files = [str(p) for p in paths]

    class ShardedLoader(Loader):
        def __init__(self, *args, **kwargs):
            # Loader.__init__ builds its memory manager by this module-level name; ours skips
            # the base class's per-sample Python maps (built and thrown away otherwise)
            import ffcv.loader.loader as module

            original, module.OSCacheManager = module.OSCacheManager, _concat_manager
            try:
                super().__init__(*args, **kwargs)
            finally:
                module.OSCacheManager = original

        # Loader.__init__ assigns its one file's Reader; the setter swaps in the concatenation
        # before anything reads it
        @property
        def reader(self):
            return self._sharded_reader

        @reader.setter
        def reader(self, value):
            self._sharded_reader = ConcatReader(files, first=value)

    loader_kwargs["os_cache"] = True
    return ShardedLoader(files[0], **loader_kwargs)
