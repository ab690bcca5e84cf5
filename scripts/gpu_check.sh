#!/usr/bin/env bash
# One-shot check of the CUDA backend on a machine with a GPU, sized to run in a few minutes on an H100:
# builds convlab from this checkout with CONVLAB_CUDA=ON, runs the whole test suite, runs compute-sanitizer
# (memcheck, racecheck, initcheck) over a small script that calls every CUDA kernel, and runs the benchmark
# on cpu and cuda. Every log goes to OUTDIR; a summary is printed and saved as OUTDIR/summary.txt.
# Usage: bash scripts/gpu_check.sh OUTDIR   (needs cmake, nvcc and python with numpy, pytest, pybind11, setuptools;
# torch is optional: the suite's PyTorch oracles and the benchmark's comparison use it when installed).
set -uo pipefail
export PATH=$PATH:/usr/local/cuda/bin
out=$(realpath -m "${1:?usage: gpu_check.sh OUTDIR}")
mkdir -p "$out"
cd "$(dirname "$0")/.."
summary="$out/summary.txt"
: >"$summary"
say() { echo "$*" | tee -a "$summary"; }
failed=0

# step NAME SECONDS LOG CMD...: runs CMD under a time limit into LOG and records how it ended.
step() {
  local name=$1 limit=$2 log=$3 start rc
  shift 3
  start=$(date +%s)
  timeout "$limit" "$@" >"$log" 2>&1
  rc=$?
  local took=$(($(date +%s) - start))
  if [ $rc -eq 0 ]; then say "[ok]      $name (${took}s)"
  elif [ $rc -eq 124 ]; then say "[TIMEOUT] $name after ${limit}s (log: $(basename "$log"))"; failed=1
  else say "[FAILED]  $name: exit $rc after ${took}s (log: $(basename "$log"))"; failed=1
  fi
  return $rc
}

say "gpu_check $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
say "$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -1)"
say "$(nvcc --version 2>&1 | tail -1)"
missing=$(python3 -c "
import importlib.util as u
print(' '.join(m for m in ('numpy', 'pytest', 'pybind11', 'setuptools') if u.find_spec(m) is None))")
python3 -c "import setuptools, sys; sys.exit(int(setuptools.__version__.split('.')[0]) < 77)" 2>/dev/null ||
  missing="$missing setuptools>=77"  # pyproject's SPDX license field; --no-build-isolation below uses this one
command -v cmake >/dev/null || missing="$missing cmake"
if [ -n "$missing" ]; then say "missing: $missing (install first)"; exit 1; fi

export CONVLAB_CUDA=ON CMAKE_BUILD_PARALLEL_LEVEL=$(nproc)
if ! step "build + install (CONVLAB_CUDA=ON)" 300 "$out/build.log" \
    python3 -m pip install --no-build-isolation --no-deps -v .; then
  tail -30 "$out/build.log"; exit 1
fi
python3 -c "import convlab as cl; assert cl.cuda.is_available(), 'convlab sees no GPU'" 2>&1 | tee -a "$summary" ||
  exit 1

# Run from outside the checkout so `import convlab` is the installed package with its compiled _C.
tests=$(pwd)/tests
( cd "$out" && step "pytest (whole suite)" 300 "$out/pytest.log" python3 -m pytest -q -rs -p no:cacheprovider \
    --rootdir "$tests" "$tests" )
[ $? -eq 0 ] || failed=1
say "    $(grep -E '^[0-9]+ (passed|failed)|passed|failed' "$out/pytest.log" | tail -1)"
say "    skip lines naming CUDA/GPU: $(grep -c 'SKIPPED.*\(CUDA\|GPU\)' "$out/pytest.log") (0 expected here)"

# Every CUDA kernel once, on small odd shapes, for the sanitizers; with the caching allocator off, so each
# array is its own cudaMalloc and memcheck/initcheck see its exact bounds and fresh memory.
probe=$(mktemp --suffix=.py)
cat >"$probe" <<'PY'
import numpy as np
import convlab as cl
C, rng = cl._C, np.random.default_rng(0)
def g(*shape): return cl.NDArray.from_numpy(rng.standard_normal(shape), device="cuda")
for k, s, p, d, groups in [([3, 3], [1, 1], [(1, 1), (1, 1)], [1, 1], 1), ([3, 2], [2, 1], [(2, 0), (1, 1)], [2, 1], 2),
                           ([1, 1], [1, 1], [(0, 0), (0, 0)], [1, 1], 1)]:  # dense, grouped/strided/dilated, 1x1
    x, w = g(2, 6, 9, 10), g(8, 6 // groups, *k)
    y = C.conv_forward(x, w, g(8), s, p, d, groups)
    gy = g(*y.shape)
    C.conv_backward_input(gy, w, [9, 10], s, p, d, groups); C.conv_backward_weight(x, gy, k, s, p, d, groups)
wn = rng.standard_normal((8, 6, 3, 3)); wn[0, 0, 0, 0] = np.inf  # backward-input's non-finite-weight redo
C.conv_backward_input(g(2, 8, 9, 10), cl.NDArray.from_numpy(wn, device="cuda"), [9, 10], [1, 1], [(1, 1), (1, 1)], [1, 1], 1)
x, w = g(2, 4, 9, 10), g(8, 1, 3, 3)  # depthwise
y = C.conv_forward(x, w, None, [2, 2], [(1, 1), (1, 1)], [1, 1], 4); gy = g(*y.shape)
C.conv_backward_input(gy, w, [9, 10], [2, 2], [(1, 1), (1, 1)], [1, 1], 4)
C.conv_backward_weight(x, gy, [3, 3], [2, 2], [(1, 1), (1, 1)], [1, 1], 4)
x = g(2, 3, 9, 10)
y = C.max_pool_forward(x, [3, 3], [2, 2], [1, 1], [1, 1], True); C.max_pool_backward(x, g(*y.shape), [3, 3], [2, 2], [1, 1], [1, 1], True)
y = C.avg_pool_forward(x, [3, 3], [2, 2], [1, 1], True, False); C.avg_pool_backward(g(*y.shape), [9, 10], [3, 3], [2, 2], [1, 1], True, False)
y = C.adaptive_avg_pool_forward(x, [4, 3]); C.adaptive_avg_pool_backward(g(*y.shape), [9, 10])
C.adaptive_avg_pool_forward(g(2, 3, 20, 21), [1, 1])  # the warp-per-window kernel
a, b = g(3, 70, 20), g(3, 20, 33)
(a @ b).numpy(); ((a.permute((0, 2, 1)) + 1.0).exp() - a.permute((0, 2, 1))).sum(axes=1).numpy()
g(2, 5000).max(axes=1).numpy(); g(3, 5000).argmax(axis=1).numpy(); g(4, 5, 6).pad([(1, 0), (2, 2), (0, 3)], mode="reflect").numpy()
h = g(4, 6); h[1:, ::2] = 3.0; h.astype("float32").numpy()
C.cuda_synchronize(); print("probe ok")
PY
if command -v compute-sanitizer >/dev/null; then
  for tool in memcheck racecheck initcheck; do
    step "compute-sanitizer --tool $tool" 120 "$out/sanitizer_$tool.log" \
      env CONVLAB_CUDA_NO_CACHING=1 compute-sanitizer --tool "$tool" --error-exitcode 1 python3 "$probe"
    say "    $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$out/sanitizer_$tool.log" | tail -1)"
  done
else
  say "[FAILED]  compute-sanitizer not found on PATH"; failed=1
fi
rm -f "$probe"

suite=$(pwd)/bench/shapes.json
( cd "$out" && step "benchmark (cpu,cuda)" 240 "$out/bench.log" python3 -m convlab.bench --device cpu,cuda \
    --repeat 3 --suite "$suite" --json "$out/bench.json" )
[ $? -eq 0 ] || failed=1
tail -40 "$out/bench.log" | tee -a "$summary"

say "gpu_check: $([ $failed -eq 0 ] && echo ALL OK || echo SOME STEPS FAILED) (logs in $out)"
exit $failed
