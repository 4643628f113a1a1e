"""A fix for FFCV 1.0.2's memory managers, which mutate numba's shared array types.

``OSCacheManager.state_type`` and ``ProcessCacheManager.state_type`` build the type of the
reader's state as ``t = numba.uint8[::1]; t.mutable = False``. ``numba.uint8[::1]`` is not a new
object: numba interns its types, so this flips the one process-wide ``Array(uint8, 1, 'C')``
to read-only, and every Loader built afterwards flips the next one. A numba type's hash is the
hash of its fields, and these objects are already keys of numba's dicts (each dispatcher's
``overloads``, the type cache). The mutation changes their hash in place, so those dicts lose
the entries (``compile_reader`` calls it, so every Loader over the OS cache does this):

- every dead Loader's dispatcher finalizer prints ``KeyError: (Array(uint8, 1, 'C', True, ...``
  ("Exception ignored in: <finalize object ...>"), the noise console.py hid;
- and, when a Loader is built while another Loader's thread is compiling its pipeline (between
  the compile of a call and its lowering, ``Dispatcher.get_overload`` looks the signature up
  again), that thread dies with the same ``KeyError``: the loader failure the suite saw a few
  times in a process that had built many Loaders (CI of 2026-12-06).

Measured before the fix: the hash of a ``decoder`` stage's signature changed between its
compile and its finalization in every Loader. :func:`apply` replaces ``OSCacheManager``'s
``state_type`` and ``compile_reader`` with ones that build the same types
(``numba.types.Array(..., readonly=True)``, a type of its own) without touching shared objects. It is idempotent; :mod:`datamodules.ffcv_read` applies it
before building any pipeline, so every Loader of the project gets it.
"""

from __future__ import annotations

_APPLIED = False


def _os_cache_state_type(self):
    """FFCV's type, read literally: the file's bytes read-only, both uint64 tables (sample
    offsets and sizes) writable (FFCV misspells the first ``mutable`` and then sets the bytes'
    flag)."""
    import numba as nb

    data = nb.types.Array(nb.uint8, 1, "C", readonly=True)
    return nb.types.Tuple([data, nb.uint64[::1], nb.uint64[::1]])


def _os_cache_compile_reader(self):
    """The reader of one sample's bytes, compiled with the signature FFCV's ended up with once
    its mutation had run: ``readonly uint8[::1](uint64, state_type)``."""
    import numba as nb
    import numpy as np
    from ffcv.pipeline.compiler import Compiler

    state = _os_cache_state_type(self)

    def read(address, mem_state):  # the bytes of the sample stored at ``address``
        size = mem_state[2][np.searchsorted(mem_state[1], address)]
        return mem_state[0][address : address + size]

    return Compiler.compile(read, state.types[0](nb.uint64, state))


def apply() -> None:
    """Install the non-mutating ``state_type`` and ``compile_reader`` on FFCV's OS-cache manager
    (the one every pretraining Loader uses; ``ProcessCacheManager.state_type`` mutates too, but
    nothing in FFCV 1.0.2 calls it)."""
    global _APPLIED
    if _APPLIED:
        return
    from ffcv.memory_managers import OSCacheManager

    OSCacheManager.state_type = property(_os_cache_state_type)
    OSCacheManager.compile_reader = _os_cache_compile_reader
    _APPLIED = True
