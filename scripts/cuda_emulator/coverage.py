"""Coverage of src/cuda by the emulator's gcov data (check.sh coverage): per .cu/.cuh file the lines run,
the branches taken and the functions (kernels and launchers, one per template instance) run, then the
names of those never entered; the total line last.
Usage: python coverage.py BUILD_DIR SRC_CUDA_DIR"""
import collections
import gzip
import json
import pathlib
import subprocess
import sys
import tempfile

build, src = pathlib.Path(sys.argv[1]).resolve(), pathlib.Path(sys.argv[2]).resolve()
lines = collections.defaultdict(dict)     # file -> line -> count (summed over translation units)
branches = collections.defaultdict(dict)  # file -> (line, i) -> count
functions = collections.defaultdict(dict)  # file -> demangled name -> count
with tempfile.TemporaryDirectory() as tmp:
    gcda = sorted(build.rglob("cuda_emulator/src/cuda/*.gcda"))
    if not gcda:
        sys.exit(f"coverage.py: no .gcda files under {build} (was it built with CONVLAB_EMULATOR_COVERAGE=ON?)")
    subprocess.run(["gcov", "--json-format", "--branch-probabilities", *map(str, gcda)], cwd=tmp, check=True, capture_output=True)
    for report in pathlib.Path(tmp).glob("*.gcov.json.gz"):
        for f in json.loads(gzip.decompress(report.read_bytes()))["files"]:
            path = pathlib.Path(f["file"]).resolve()
            if path.parent != src:
                continue
            for ln in f["lines"]:
                lines[path.name][ln["line_number"]] = lines[path.name].get(ln["line_number"], 0) + ln["count"]
                for i, b in enumerate(ln["branches"]):
                    if not b["throw"]:
                        key = (ln["line_number"], i)
                        branches[path.name][key] = branches[path.name].get(key, 0) + b["count"]
            for fn in f["functions"]:
                name = fn["demangled_name"]
                functions[path.name][name] = functions[path.name].get(name, 0) + fn["execution_count"]

def pct(d):
    return f"{sum(c > 0 for c in d.values())}/{len(d)} ({100 * sum(c > 0 for c in d.values()) / max(len(d), 1):.1f}%)"

print(f"{'file':22} {'lines':>18} {'branches':>18} {'functions':>18}")
for name in sorted(lines):
    print(f"{name:22} {pct(lines[name]):>18} {pct(branches[name]):>18} {pct(functions[name]):>18}")
    # Template instances never run (a dtype, a variant), by name without arguments.
    # (gcov cannot demangle EMU_LAUNCH's lambdas, counted as functions too: one per launch site and instance.)
    short = lambda fn: fn.replace("(anonymous namespace)::", "").split("(")[0].partition("convlab::")[2]
    never = sorted({short(fn) for fn, count in functions[name].items() if count == 0 and not fn.startswith("_Z")})
    for fn in never:
        print(f"    never entered: {fn}")
all_lines = {(f, n): c for f in lines for n, c in lines[f].items()}
all_branches = {(f, k): c for f in branches for k, c in branches[f].items()}
all_functions = {(f, n): c for f in functions for n, c in functions[f].items()}
print(f"{'total':22} {pct(all_lines):>18} {pct(all_branches):>18} {pct(all_functions):>18}")
