#!/usr/bin/env bash
# The README's test command: set everything up, lint, run the whole suite (slow tests included).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
# both cores: one worker per core, each test file on one worker (module fixtures stay shared)
OMP_WAIT_POLICY=PASSIVE .venv/bin/python -m pytest -q -n 2 --dist loadfile --durations=20 "$@"
