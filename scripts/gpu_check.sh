#!/usr/bin/env bash
# The GPU path measured in one prepared run (issue 15): `bash scripts/gpu_check.sh [bench args]`
# on a GPU machine, from a copy of this repository. Ends within GPU_CHECK_LIMIT_S (default 480 s,
# installs included): prints the FFCV loader's images/s into GPU memory at 224 px, ResNeXt-101
# 32x8d training images/s (bf16, channels_last, with and without torch.compile, per-GPU batch 24
# and 64), MFU from FlopCounterMode against the H200's bf16 peak, peak memory, and whether the
# loader or the model bounds the step (experiments/benchmarks/gpu.py; JSON into $OUT or
# runs/bench/gpu.json).
#
# Installs: the machine's own CUDA torch is used and never replaced. What the benchmark imports
# besides it comes, in this order, from
#   1. .whl/ when present (scripts/gpu_wheels.sh prepares it where an index is reachable; for a
#      machine without network, such as this workplace's H200 image);
#   2. `pip install -e .` when an index is reachable (pyproject's ranges keep this torch; FFCV
#      compiles against libturbojpeg and OpenCV, which apt-get installs when run as root).
# Without FFCV the loader is not measured (said so); the model figures still are.
set -uo pipefail
cd "$(dirname "$0")/.."
T0=$SECONDS
LIMIT_S=${GPU_CHECK_LIMIT_S:-480}
PY=${PYTHON:-python3}
say() { echo "gpu_check: $*"; }

if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  say "no CUDA device for $PY (no torch, or torch without a GPU): run this on a GPU machine"
  exit 1
fi

MODULES="yaml omegaconf torchvision lightning torchmetrics numba cv2 tqdm ffcv"
missing() { for m in $MODULES; do "$PY" -c "import $m" 2>/dev/null || printf '%s ' "$m"; done; }
todo=$(missing)
if [ -n "$todo" ] && [ -d .whl ]; then
  say "installing the carried wheels (.whl/) for: $todo"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --target /tmp/gpu-check-site .whl/*.whl
  export PYTHONPATH=/tmp/gpu-check-site${PYTHONPATH:+:$PYTHONPATH}
  [ -d .whl/lib ] && export LD_LIBRARY_PATH=$PWD/.whl/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  todo=$(missing)
fi
if [ -n "$todo" ] && timeout 20 "$PY" -m pip download -q --no-deps -d /tmp/gpu-check-probe pip \
    >/dev/null 2>&1; then
  if [[ " $todo" == *" ffcv "* ]] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "apt-get install FFCV's build dependencies"
    timeout 150 apt-get install -y -q --no-install-recommends pkg-config libturbojpeg0-dev \
      libopencv-dev >/dev/null || say "apt-get failed; FFCV may not build"
  fi
  say "pip install -e . (compatible ranges: this machine's torch stays) for: $todo"
  timeout 240 "$PY" -m pip install -q -e . || say "pip install -e . failed or timed out"
  todo=$(missing)
fi
skip=()
if [[ " $todo" == *" ffcv "* ]]; then
  say "FFCV is not importable here: the loader is NOT measured (see scripts/gpu_wheels.sh)"
  skip=(--skip-loader)
  todo=${todo/ffcv /}
fi
if [ -n "${todo// /}" ]; then
  say "missing Python modules: $todo; carry their wheels in .whl/ (scripts/gpu_wheels.sh)"
  exit 1
fi

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>/dev/null
"$PY" -c "import torch; print('gpu_check: torch', torch.__version__, 'CUDA', torch.version.cuda)"
# the benchmark starts no configuration after its budget; the last one and the exit need ~90 s
budget=$((LIMIT_S - (SECONDS - T0) - 90))
out=${OUT:-runs/bench}
mkdir -p "$out"
PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 "$PY" -m experiments bench gpu \
  --budget-s "$budget" --cache-dir /tmp/gpu-check-cache --out "$out/gpu.json" "${skip[@]}" "$@"
rc=$?
say "done in $((SECONDS - T0)) s (limit $LIMIT_S s), exit $rc"
exit $rc
