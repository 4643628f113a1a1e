import os
import threading

import pytest

# as in experiments/__init__.py: OpenMP threads must not spin against FFCV's loader threads
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


@pytest.fixture(autouse=True)
def _stop_leftover_ffcv_epoch_threads():
    """An FFCV epoch iterator that a test leaves unfinished (``next(iter(loader))``, a fit that
    stops mid-epoch) keeps its producer thread alive for the rest of the worker process. Stop
    each such thread when its test ends, so no test runs beside another test's threads."""
    before = set(threading.enumerate())
    yield
    for thread in set(threading.enumerate()) - before:
        if type(thread).__name__ == "EpochIterator":
            thread.terminate_event.set()  # it returns within 0.5 s, then its memory is released
            thread.join(timeout=5)
            thread.close()
