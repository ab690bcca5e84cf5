#!/usr/bin/env bash
# Builds convlab._C with the CUDA backend emulated on the CPU (CONVLAB_CUDA_EMULATOR=ON: the project's CMake
# build, with src/cuda translated to C++ by emulator.cmake), so the "cuda" device runs the kernels' logic
# on a machine without a GPU. Blind to GPU-only faults: see docs/cuda_emulator.md and scripts/gpu_check.sh.
# Usage: bash scripts/cuda_emulator/build.sh [BUILD_DIR] [extra cmake args...]; then export the printed
#        PYTHONPATH and run e.g. python -m pytest tests/test_cuda.py (scripts/cuda_emulator/check.sh: the CI profile)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build/cuda_emulator}
shift || true
# The emulator takes nvcc's place: a CONVLAB_CUDA=ON exported by the caller (CI does, for its nvcc build) would
# make CMake refuse the pair.
CONVLAB_CUDA=OFF exec bash "$root/scripts/dev_build.sh" "$build" -DCONVLAB_CUDA_EMULATOR=ON "$@"
