#!/usr/bin/env bash
# Prepares .whl/ (git-ignored) for scripts/gpu_check.sh on a GPU machine that cannot reach a
# package index, such as this workplace's H200 (a CUDA image with Python 3.12, torch,
# torchvision, Lightning, numba and OpenCV, but no omegaconf and no FFCV). Run it on a machine
# that can (this one), then send .whl/ along with the repository (the device tool's `carry`).
#
#   .whl/*.whl  omegaconf (downloaded for that Python) and FFCV, built here for that Python
#               against this machine's libturbojpeg and OpenCV (FFCV's other requirements are
#               on the image or not imported by the loader)
#   .whl/lib/   the shared libraries FFCV's extension links (OpenCV core/imgproc, turbojpeg and
#               what they need), without the C/C++ runtime the target has; gpu_check.sh puts
#               them on LD_LIBRARY_PATH
set -euo pipefail
cd "$(dirname "$0")/.."

PYV=${GPU_PYTHON_VERSION:-3.12}
BUILD_PY=${BUILD_PYTHON:-python$PYV}  # an interpreter of that version with its headers
"$BUILD_PY" -c pass 2>/dev/null || BUILD_PY=$(ls -d ~/.pyenv/versions/"$PYV"*/bin/python 2>/dev/null | tail -1)
"${BUILD_PY:-false}" -c pass 2>/dev/null || { echo "gpu_wheels: need a Python $PYV to build FFCV (BUILD_PYTHON=...)"; exit 1; }
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude

pin() { grep -i "^$1==" constraints.txt; }  # the tested versions
rm -rf .whl && mkdir -p .whl/lib
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$PYV" \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
  --platform any -d .whl "$(pin omegaconf)"
build=$(mktemp -d)
"$BUILD_PY" -m pip download -q --no-deps --no-binary :all: "$(pin ffcv)" -d "$build"
"$BUILD_PY" -m pip wheel -q --no-deps "$build"/ffcv-*.tar.gz -w .whl
so=$(mktemp -d)
unzip -q -o .whl/ffcv-*.whl 'ffcv/_libffcv*.so' -d "$so"
# every library the extension needs, but the C/C++ runtime and the kernel's loader
ldd "$so"/ffcv/_libffcv*.so | awk '/=> \//{print $3}' \
  | grep -Ev '/(libc|libm|libpthread|libdl|librt|libstdc\+\+|libgcc_s|ld-linux[^/]*)\.so' \
  | while read -r lib; do cp -L "$lib" .whl/lib/; done
rm -rf "$build" "$so"
du -sh .whl
ls .whl .whl/lib
