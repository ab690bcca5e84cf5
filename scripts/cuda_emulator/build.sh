#!/usr/bin/env bash
# Builds convlab._C with the CUDA backend compiled as plain C++ against the CPU emulation in cuda_runtime.h
# (one OS thread per CUDA thread, at most 5 blocks per launch so every grid-stride loop is exercised), so the
# CUDA kernels' logic can be tested on a machine without a GPU: the "cuda" device is then host memory.
# Slow (threads and barriers), and blind to GPU-only faults: use scripts/gpu_check.sh on a real GPU too.
# Usage: bash scripts/cuda_emulator/build.sh [BUILD_DIR]; then export the printed PYTHONPATH and run e.g.
#        python -m pytest tests/test_cuda.py
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$(realpath -m "${1:-$root/build/cuda_emulator}")
mkdir -p "$build/src" "$build/obj" "$build/py/convlab"
cp -rp "$root/src/common" "$root/src/cpu" "$root/src/bindings.cpp" "$build/src/"
python3 "$here/translate.py" "$root/src/cuda" "$build/src/cuda"
mkdir -p "$build/inc" && cp -p "$here/cuda_runtime.h" "$build/inc/"
flags="-std=c++20 -O2 -march=native -fopenmp -fPIC -w -DCONVLAB_WITH_CUDA $(python3 -m pybind11 --includes)"
for f in "$build"/src/bindings.cpp "$build"/src/common/*.cpp "$build"/src/cpu/*.cpp "$build"/src/cuda/*.cpp; do
  o="$build/obj/$(basename "$(dirname "$f")")_$(basename "$f").o"
  stale=0
  for dep in "$f" "$build"/inc/*.h "$build"/src/common/*.h "$build"/src/common/*.inc "$build"/src/cpu/*.h "$build"/src/cuda/*.h "$build"/src/cuda/*.cuh; do
    [ -f "$o" ] && [ ! "$dep" -nt "$o" ] || stale=1
  done
  if [ $stale -eq 1 ]; then
    g++ $flags -I"$build/src" -I"$build/inc" -c "$f" -o "$o" &
    [ "$(jobs -r | wc -l)" -ge "${JOBS:-2}" ] && wait -n
  fi
done
wait
g++ -shared -fopenmp "$build"/obj/*.o -o "$build/py/convlab/_C$(python3-config --extension-suffix)"
for f in "$root"/python/convlab/*; do ln -sfn "$f" "$build/py/convlab/"; done
ln -sf "$root/bench/shapes.json" "$build/py/convlab/bench_shapes.json"
echo "export PYTHONPATH=$build/py"
