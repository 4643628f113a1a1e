#!/usr/bin/env bash
# The README's main command: set everything up, run the main job on OpenClipart's real user tags.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m experiments quickstart "$@"
