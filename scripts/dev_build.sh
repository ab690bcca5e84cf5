#!/usr/bin/env bash
# Builds convlab._C into BUILD_DIR (default build/dev) without pip, and lays out BUILD_DIR/py/convlab as
# links to python/convlab plus the fresh extension, so several people can build side by side.
# Usage: bash scripts/dev_build.sh [BUILD_DIR] [extra cmake args...]; then export the printed PYTHONPATH.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(realpath -m "${1:-$root/build/dev}")
shift || true
pybind11_dir=$(python3 -c "import pybind11; print(pybind11.get_cmake_dir())")
gen=(); command -v ninja >/dev/null && gen=(-GNinja)
cmake -S "$root" -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -Dpybind11_DIR="$pybind11_dir" \
  -DPython_EXECUTABLE="$(command -v python3)" -DCONVLAB_CUDA=OFF "$@" >/dev/null
cmake --build "$build" -j "${JOBS:-2}"
rm -rf "$build/py" && mkdir -p "$build/py/convlab"
for f in "$root"/python/convlab/*; do ln -s "$f" "$build/py/convlab/"; done
ln -s "$build"/_C*.so "$build/py/convlab/"
echo "export PYTHONPATH=$build/py"
