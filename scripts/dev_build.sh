#!/usr/bin/env bash
# Builds convlab._C into BUILD_DIR (default build/dev) through setup.py, the same CMake path `pip install .`
# takes, and lays out BUILD_DIR/py/convlab as links to python/convlab plus the fresh extension, so several
# people can build side by side without installing anything.
# Usage: bash scripts/dev_build.sh [BUILD_DIR] [extra cmake args...]; then export the printed PYTHONPATH.
# setup.py's environment switches apply (CONVLAB_CUDA defaults to OFF here: pass -DCONVLAB_CUDA=ON to compile
# the CUDA backend); JOBS sets the parallel compile jobs (default 2).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(realpath -m "${1:-$root/build/dev}")
shift || true
cd "$root"
CONVLAB_CUDA="${CONVLAB_CUDA:-OFF}" CMAKE_BUILD_PARALLEL_LEVEL="${JOBS:-2}" CONVLAB_CMAKE_ARGS="${*@Q}" \
  python3 setup.py -q build_ext --build-temp "$build" --build-lib "$build/lib"
rm -rf "$build/py" && mkdir -p "$build/py/convlab"
for f in "$root"/python/convlab/*; do ln -s "$f" "$build/py/convlab/"; done
ln -s "$build"/lib/convlab/_C*.so "$build/py/convlab/"
echo "export PYTHONPATH=$build/py"
