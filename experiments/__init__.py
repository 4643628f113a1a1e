"""What a researcher runs: `python -m experiments <verb>`."""

import os

# FFCV's loader threads share the cores with PyTorch's OpenMP threads. OpenMP's default
# spin-waiting then starves the loader (measured: a 9x slower training step on 2 cores), so
# idle OpenMP threads sleep instead. Set before torch loads libgomp; a user's value wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
