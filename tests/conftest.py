import os

# as in experiments/__init__.py: OpenMP threads must not spin against FFCV's loader threads
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
