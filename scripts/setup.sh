#!/usr/bin/env bash
# One setup path for both README commands: Debian packages, .venv, the project with the exact
# pins of constraints.txt.
# Idempotent: a second run checks and returns in seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  pkg-config libturbojpeg0-dev libopencv-dev   # FFCV's C extension
  wordnet-base                                 # WordNet 3.0 nouns (/usr/share/wordnet)
  openclipart-svg                              # real user-tagged images (/usr/share/openclipart)
  dataset-fashion-mnist                        # a transfer target (/usr/share/datasets/fashion-mnist)
)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "[setup] apt-get install ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  log=$(mktemp "${TMPDIR:-/tmp}/wsl-scale-apt.XXXXXX.log")  # apt's output, shown on failure
  if ! { $SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q \
      --no-install-recommends "${missing[@]}"; } > "$log" 2>&1; then
    tail -n 40 "$log"
    echo "[setup] apt-get failed; the whole log: $log" >&2
    exit 1
  fi
fi

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=".venv/.installed-$(cat pyproject.toml constraints.txt scripts/setup.sh | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "[setup] installing Python packages into .venv (exact pins: constraints.txt)"
  # pyproject.toml declares ranges; constraints.txt pins every package to the tested version
  # (torch/torchvision included: pip takes them from this machine's disk).
  # pip's own output (this machine's index warnings included) goes to a log, shown on failure
  if ! .venv/bin/pip install -c constraints.txt -e ".[dev]" > .venv/pip-install.log 2>&1; then
    tail -n 40 .venv/pip-install.log
    echo "[setup] pip install failed; the whole log: .venv/pip-install.log" >&2
    exit 1
  fi
  rm -f .venv/.installed-*
  touch "$stamp"
fi
echo "[setup] ready: .venv ($(.venv/bin/python -c 'import torch, ffcv; print("torch", torch.__version__, "ffcv ok")'))"
