"""Coverage of src/cuda by the emulator's gcov data (check.sh coverage): per .cu/.cuh file the lines run,
the branches taken and the functions (kernels and launchers, one per template instance) run, then the
names of those never entered; the total line last. select_profile.py reads gcov data through read().
Usage: python coverage.py BUILD_DIR SRC_CUDA_DIR"""
import collections
import gzip
import json
import pathlib
import subprocess
import sys
import tempfile


class Coverage:
    """Execution counts of src/cuda, summed over translation units: per file, line -> count,
    (line, i) -> count for the i-th branch of a line, demangled function name -> count."""

    def __init__(self):
        self.lines = collections.defaultdict(dict)
        self.branches = collections.defaultdict(dict)
        self.functions = collections.defaultdict(dict)


def add(table, key, count):
    table[key] = table.get(key, 0) + count


def read(gcda_files, src):
    """Runs gcov over the .gcda files and keeps what belongs to the files of the directory src."""
    cov = Coverage()
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["gcov", "--json-format", "--branch-probabilities", *map(str, gcda_files)], cwd=tmp,
                       check=True, capture_output=True)
        for report in pathlib.Path(tmp).glob("*.gcov.json.gz"):
            for f in json.loads(gzip.decompress(report.read_bytes()))["files"]:
                path = pathlib.Path(f["file"]).resolve()
                if path.parent != src:
                    continue
                for ln in f["lines"]:
                    add(cov.lines[path.name], ln["line_number"], ln["count"])
                    for i, b in enumerate(ln["branches"]):
                        if not b["throw"]:
                            add(cov.branches[path.name], (ln["line_number"], i), b["count"])
                for fn in f["functions"]:
                    add(cov.functions[path.name], fn["demangled_name"], fn["execution_count"])
    return cov


def emulated_gcda(build):
    """The .gcda files of the emulated src/cuda objects in a CONVLAB_EMULATOR_COVERAGE build."""
    return sorted(pathlib.Path(build).rglob("cuda_emulator/src/cuda/*.gcda"))


def flat(table):
    """file -> key -> count as (file, key) -> count."""
    return {(f, k): c for f in table for k, c in table[f].items()}


def pct(d):
    run = sum(c > 0 for c in d.values())
    return f"{run}/{len(d)} ({100 * run / max(len(d), 1):.1f}%)"


def report(cov):
    print(f"{'file':22} {'lines':>18} {'branches':>18} {'functions':>18}")
    for name in sorted(cov.lines):
        print(f"{name:22} {pct(cov.lines[name]):>18} {pct(cov.branches[name]):>18} {pct(cov.functions[name]):>18}")
        # Template instances never run (a dtype, a variant), by name without arguments.
        # (gcov cannot demangle EMU_LAUNCH's lambdas, counted as functions too: one per launch site and instance.)
        short = lambda fn: fn.replace("(anonymous namespace)::", "").split("(")[0].partition("convlab::")[2]
        never = sorted({short(fn) for fn, count in cov.functions[name].items() if count == 0 and not fn.startswith("_Z")})
        for fn in never:
            print(f"    never entered: {fn}")
    print(f"{'total':22} {pct(flat(cov.lines)):>18} {pct(flat(cov.branches)):>18} {pct(flat(cov.functions)):>18}")


if __name__ == "__main__":
    build, src = pathlib.Path(sys.argv[1]).resolve(), pathlib.Path(sys.argv[2]).resolve()
    gcda = emulated_gcda(build)
    if not gcda:
        sys.exit(f"coverage.py: no .gcda files under {build} (was it built with CONVLAB_EMULATOR_COVERAGE=ON?)")
    report(read(gcda, src))
