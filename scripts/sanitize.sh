#!/usr/bin/env bash
# Builds convlab._C with AddressSanitizer + UndefinedBehaviorSanitizer into its own build dir and runs the
# NDArray, convolution and pooling tests (and the kernel fuzzers) under it; any sanitizer report fails.
# Usage: bash scripts/sanitize.sh [BUILD_DIR] [pytest args...]   (default BUILD_DIR: build/sanitize)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(realpath -m "${1:-$root/build/sanitize}")
shift || true

# LTO would move the instrumented code into a link step that drops the sanitizer flags.
export_line=$(bash "$root/scripts/dev_build.sh" "$build" -DCONVLAB_SANITIZE=address,undefined \
  -DCMAKE_INTERPROCEDURAL_OPTIMIZATION=OFF | tail -n 1)
eval "$export_line"

# CPython is not built with ASan, so its runtime must be loaded first, with libstdc++ beside it (or ASan's
# __cxa_throw interceptor finds no real function and aborts on the first C++ exception). CPython's own
# leaks at exit are not ours (detect_leaks=0). allocator_may_return_null lets absurd sizes fail as
# std::bad_alloc, as in a normal build, instead of ASan aborting. PYTHONMALLOC=malloc puts Python objects
# under ASan too.
export LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libstdc++.so)"
export ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:abort_on_error=1:strict_string_checks=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export PYTHONMALLOC=malloc
cd "$root"
tests=(tests/test_ndarray_*.py tests/test_indexing.py tests/test_conv*.py tests/test_pool*.py tests/test_bad_input.py "tests/test_fuzz.py::test_"{conv,conv_transpose,max_pool,avg_pool,adaptive_avg_pool}"_kernels")
python3 -m pytest -q -x -p no:cacheprovider "${tests[@]}" "$@"
echo "sanitize: no ASan/UBSan reports"
