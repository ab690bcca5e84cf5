#!/usr/bin/env bash
# The CUDA backend checked without a GPU: builds the emulator (build.sh) in one of four modes and runs the
# CUDA test profile (tests/cuda_profile.txt) on the emulated device; any test failure or sanitizer report
# fails. Modes:
#   plain     the kernels' logic only
#   address   AddressSanitizer + UBSan: an out-of-bounds global load or store is a report (memcheck)
#   thread    ThreadSanitizer: a race between threads of a block, e.g. a missing __syncthreads (racecheck);
#             this CPython cannot load TSan, so this mode builds and runs the C++ driver
#             tests/cuda_race/race_driver.cpp (every kernel family against the CPU kernels) instead of pytest
#   coverage  gcov of src/cuda/*.cu over the profile, printed per file (see docs/cuda_emulator.md)
# Every mode runs with CONVLAB_CUDA_NO_CACHING=1 (each array its own poisoned, exact-size allocation:
# initcheck and exact bounds) except the two tests of the caching allocator itself.
# Usage: bash scripts/cuda_emulator/check.sh MODE [BUILD_DIR] [pytest args replacing the profile...]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
mode=${1:?usage: check.sh plain|address|thread|coverage [BUILD_DIR] [pytest args...]}
build=$(realpath -m "${2:-$root/build/cuda_emulator-$mode}")
shift $(($# < 2 ? $# : 2))

if [ "$mode" = thread ]; then
  # Only the driver target: its own copy of the CPU and emulated sources under -fsanitize=thread (the
  # Python extension would be a second, unused TSan build). OpenMP's runtime is not instrumented, so TSan
  # would see the CPU kernels' workers as racing: one thread.
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCONVLAB_CUDA=OFF -DCONVLAB_CUDA_EMULATOR=ON \
    -DCONVLAB_SANITIZE=thread -DCMAKE_INTERPROCEDURAL_OPTIMIZATION=OFF \
    -Dpybind11_DIR="$(python3 -c 'import pybind11; print(pybind11.get_cmake_dir())')" >/dev/null
  CMAKE_BUILD_PARALLEL_LEVEL="${JOBS:-2}" cmake --build "$build" --target cuda_race_driver
  CONVLAB_CUDA_NO_CACHING=1 OMP_NUM_THREADS=1 \
    TSAN_OPTIONS="halt_on_error=1:abort_on_error=1:report_signal_unsafe=0:suppressions=$here/tsan.supp" \
    "$build/cuda_race_driver"
  echo "cuda_emulator check (thread): passed"
  exit 0
fi

case $mode in
  plain) flags=() ;;
  # LTO would move the instrumented code into a link step that drops the sanitizer flags.
  address) flags=(-DCONVLAB_SANITIZE=address,undefined -DCMAKE_INTERPROCEDURAL_OPTIMIZATION=OFF) ;;
  coverage) flags=(-DCONVLAB_EMULATOR_COVERAGE=ON) ;;
  *) echo "check.sh: unknown mode '$mode' (plain, address, thread or coverage)" >&2; exit 2 ;;
esac
export_line=$(bash "$here/build.sh" "$build" "${flags[@]}" | tail -n 1)  # a failed build stops here
eval "$export_line"

# Sanitizer runtimes go first into the uninstrumented CPython (see scripts/sanitize.sh for the ASan options).
case $mode in
  address)
    export LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libstdc++.so)"
    export ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:abort_on_error=1:strict_string_checks=1"
    export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
    export PYTHONMALLOC=malloc ;;
  coverage) find "$build" -name '*.gcda' -delete ;;
esac

cd "$root"
# An installed convlab without the emulator would skip every CUDA test and pass (checked with the sanitizer
# runtime loaded: the instrumented extension needs it).
python3 -c "import convlab, sys; sys.exit(not convlab.cuda.is_available())" ||
  { echo "check.sh: convlab on PYTHONPATH ($PYTHONPATH) has no emulated CUDA device" >&2; exit 1; }
if [ $# -eq 0 ]; then mapfile -t args < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' tests/cuda_profile.txt); else args=("$@"); fi
pytest=(python3 -m pytest -q -x -p no:cacheprovider)
caching=(tests/test_cuda.py::test_caching_allocator_reuses_released_blocks
         tests/test_cuda.py::test_caching_training_step_stops_calling_cuda_malloc)
CONVLAB_CUDA_NO_CACHING=1 "${pytest[@]}" "${args[@]}" "${caching[@]/#/--deselect=}"
"${pytest[@]}" "${caching[@]}"

if [ "$mode" = coverage ]; then
  python3 "$here/coverage.py" "$build" "$root/src/cuda"
fi
echo "cuda_emulator check ($mode): passed"
