"""Chooses the CUDA test profile (tests/cuda_profile.txt) by coverage of src/cuda instead of by hand.

Runs a pool of tests on a coverage build of the emulator, takes each test's gcov counters alone
(__gcov_reset before it, __gcov_dump after it, both exported by emulator.cmake) and then picks greedily the
tests that run the most arcs of src/cuda's control-flow graphs (per template instance: one per dtype) not yet
run, per second they take, until the selection runs every arc the pool runs, and so every line, branch and
function. The tests in ALWAYS are taken first whatever they cover: they check what coverage cannot see
(every output element written, the caching allocator's reuse). Prints the selection's coverage per file (as
coverage.py), the pool's and the selection's totals, and writes the profile.

Recording a pool is the slow part (the whole `-k cuda` suite takes hours on a loaded 2-core machine), so it
can be done in pieces: --record DIR keeps a recording (one line per test in DIR/tests.jsonl, written as
each test ends, so an interrupted run keeps what it did), --use DIR adds a recording made earlier.

Usage: bash scripts/cuda_emulator/build.sh BUILD_DIR -DCONVLAB_EMULATOR_COVERAGE=ON; export its PYTHONPATH
       python scripts/cuda_emulator/select_profile.py BUILD_DIR [--out tests/cuda_profile.txt]
           [--record DIR] [--use DIR ...] [pytest args: the pool, default `tests -k cuda`]
The same file is the pytest plugin that records each test (loaded with -p select_profile)."""
import argparse
import ctypes
import json
import os
import pathlib
import shutil
import struct
import subprocess
import sys
import tempfile
import time

import coverage

ROOT = pathlib.Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "cuda"
ALWAYS = ["tests/test_cuda.py::test_every_kernel_writes_every_output_element",
          "tests/test_cuda.py::test_caching_allocator_reuses_released_blocks",
          "tests/test_cuda.py::test_caching_training_step_stops_calling_cuda_malloc"]
CACHING = ALWAYS[1:]  # they need the caching allocator on, so they run in a pytest call of their own
GCOV_TAG_FUNCTION, GCOV_TAG_ARCS = 0x01000000, 0x01A10000


# ---- the pytest plugin: a directory of .gcda files per test --------------------------------------------------

class Recorder:
    def __init__(self, build, out):
        import convlab
        library = ctypes.CDLL(convlab._C.__file__)  # the same library, so the same counters
        self.reset, self.dump = getattr(library, "__gcov_reset"), getattr(library, "__gcov_dump")
        self.build, self.out, self.bad = build, out, set()
        self.count = sum(1 for _ in out.glob("[0-9]*"))
        for f in coverage.emulated_gcda(build):
            f.unlink()

    def pytest_runtest_setup(self, item):
        self.reset()
        self.start = time.perf_counter()

    def pytest_runtest_logreport(self, report):
        if report.failed or report.skipped:
            self.bad.add(report.nodeid)

    def pytest_runtest_teardown(self, item, nextitem):
        seconds = time.perf_counter() - self.start
        self.dump()
        test_dir = self.out / f"{self.count:05d}"
        self.count += 1
        test_dir.mkdir()
        for gcda in coverage.emulated_gcda(self.build):
            shutil.move(gcda, test_dir / gcda.name)
            (test_dir / gcda.with_suffix(".gcno").name).symlink_to(gcda.with_suffix(".gcno"))
        line = {"test": item.nodeid, "dir": test_dir.name, "seconds": seconds, "ok": item.nodeid not in self.bad}
        with open(self.out / "tests.jsonl", "a") as f:
            f.write(json.dumps(line) + "\n")


def pytest_configure(config):
    if "SELECT_PROFILE_OUT" in os.environ:
        config.pluginmanager.register(Recorder(pathlib.Path(os.environ["SELECT_PROFILE_BUILD"]),
                                               pathlib.Path(os.environ["SELECT_PROFILE_OUT"])))


# ---- recording and selection ---------------------------------------------------------------------------------

def record(build, out, pool):
    """Runs the pool (with ALWAYS) under the plugin, appending to the recording in out."""
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, SELECT_PROFILE_BUILD=str(build.resolve()), SELECT_PROFILE_OUT=str(out),
               PYTHONPATH=f"{pathlib.Path(__file__).parent}:{os.environ['PYTHONPATH']}")
    pytest = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "select_profile"]
    # Failures and skips are reported by pytest and left out of the pool.
    subprocess.run([*pytest, *pool, ALWAYS[0], *[f"--deselect={t}" for t in CACHING]], cwd=ROOT,
                   env=dict(env, CONVLAB_CUDA_NO_CACHING="1"))
    subprocess.run([*pytest, *CACHING], cwd=ROOT, env=env)


def recorded(out):
    """nodeid -> (directory of its .gcda files, seconds) for the tests that passed; the last run of a test wins."""
    runs = {}
    for line in (out / "tests.jsonl").read_text().splitlines():
        r = json.loads(line)
        if r["ok"]:
            runs[r["test"]] = (out / r["dir"], r["seconds"])
    return runs


def arcs(test_dir):
    """The arcs of src/cuda's control-flow graphs that the test ran: (object, function, counter) with a non-zero
    count, read straight from its .gcda files (gcov takes a second a test; this, milliseconds). A selection that
    runs every arc the pool runs runs every line, branch and function it runs."""
    ran = set()
    for gcda in test_dir.glob("*.gcda"):
        words = struct.unpack_from(f"<{gcda.stat().st_size // 4}I", gcda.read_bytes())
        i, function = 4, None  # after magic, version, stamp, checksum
        while i + 1 < len(words):
            tag, length = words[i], words[i + 1] - (1 << 32 if words[i + 1] >> 31 else 0)  # < 0: all counters zero
            i += 2
            if tag == GCOV_TAG_FUNCTION and length:
                function = words[i]
            elif tag == GCOV_TAG_ARCS and length > 0:
                counts = words[i:i + length // 4]
                ran.update((gcda.name, function, k) for k in range(length // 8) if counts[2 * k] or counts[2 * k + 1])
            i += max(length, 0) // 4
    return ran


def merged(test_dirs, out):
    """The tests' counters summed into out (gcov-tool merge), with the .gcno files beside them for gcov."""
    out.mkdir()
    first = test_dirs[0]
    subprocess.run(["cp", *map(str, first.glob("*.gcda")), str(out)], check=True)
    for d in test_dirs[1:]:
        subprocess.run(["gcov-tool", "merge", str(d), str(out), "-o", str(out)], check=True, capture_output=True)
    for gcno in first.glob("*.gcno"):
        (out / gcno.name).symlink_to(gcno.resolve())
    return coverage.read(sorted(out.glob("*.gcda")), SRC)


def run_items(cov):
    """The lines, branches and functions with a non-zero count."""
    return {(what, f, key) for what in ("lines", "branches", "functions")
            for f, table in getattr(cov, what).items() for key, count in table.items() if count}


def select(covers, seconds):
    """Greedy set cover weighted by run time, after ALWAYS."""
    chosen = [t for t in covers if any(t == a or t.startswith(a + "[") for a in ALWAYS)]
    remaining = set().union(*covers.values()) - set().union(*(covers[t] for t in chosen))
    while remaining:
        best = max((t for t in covers if t not in chosen), key=lambda t: len(covers[t] & remaining) / (seconds[t] + 0.05))
        chosen.append(best)
        remaining -= covers[best]
    return chosen


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("build", type=pathlib.Path)
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "tests" / "cuda_profile.txt")
    parser.add_argument("--record", type=pathlib.Path, help="keep the recording of this run here")
    parser.add_argument("--use", type=pathlib.Path, action="append", default=[], help="an earlier recording")
    args, pool = parser.parse_known_args()
    with tempfile.TemporaryDirectory() as tmp:
        recordings = list(args.use)
        if pool or not recordings:
            recordings.append(args.record or pathlib.Path(tmp))
            record(args.build, recordings[-1], pool or ["tests", "-k", "cuda"])
        runs = {}
        for r in recordings:
            runs.update(recorded(r))
        names = list(runs)
        covers = {t: arcs(runs[t][0]) for t in names}
        seconds = {t: runs[t][1] for t in names}
        chosen = select(covers, seconds)
        # Lines, branches and functions by gcov, of the whole pool and of the selection. gcov derives the counts
        # of uninstrumented arcs, so a branch may still be missing: then the other tests, fastest first, are
        # read by gcov one by one and taken when they run some of what is missing.
        pool_cov = merged([runs[t][0] for t in names], pathlib.Path(tmp) / "pool")
        chosen_cov = merged([runs[t][0] for t in chosen], pathlib.Path(tmp) / "chosen")
        missing = run_items(pool_cov) - run_items(chosen_cov)
        for t in sorted(set(names) - set(chosen), key=seconds.get):
            if not missing:
                break
            gained = missing & run_items(coverage.read(sorted(runs[t][0].glob("*.gcda")), SRC))
            if gained:
                print(f"select_profile: {t} adds {sorted(gained)}")
                chosen.append(t)
                missing -= gained
        if missing:
            print(f"select_profile: not reached by the selection: {sorted(missing)}")
        chosen_cov = merged([runs[t][0] for t in chosen], pathlib.Path(tmp) / "chosen_fixed")
    coverage.report(chosen_cov)
    summary = lambda cov: ", ".join(f"{what} {coverage.pct(coverage.flat(getattr(cov, what)))}"
                                    for what in ("lines", "branches", "functions"))
    pool_text, chosen_text = summary(pool_cov), summary(chosen_cov)
    print(f"pool: {len(names)} tests, {sum(seconds.values()):.0f} s, {pool_text}")
    print(f"profile: {len(chosen)} tests, {sum(seconds[t] for t in chosen):.0f} s, {chosen_text}")
    files = sorted({t.split("::")[0] for t in names})
    header = [
        "# The CUDA test profile: what scripts/cuda_emulator/check.sh runs on the emulated device in CI (pytest",
        "# node ids, one a line). Written by scripts/cuda_emulator/select_profile.py (docs/cuda_emulator.md): the",
        "# tests it must always run (initcheck, the caching allocator) and then, greedily, the tests that add most",
        "# not yet covered arcs of src/cuda's control flow per second, until they run every arc the pool runs.",
        f"# Pool: {len(names)} tests from {len(files)} files ({' '.join(pool) or 'earlier recordings'}), passed on the",
        f"# emulator: {pool_text}.",
        f"# Selected: {len(chosen)} tests ({sum(seconds[t] for t in chosen):.0f} s of the pool's {sum(seconds.values()):.0f} s"
        f" in the coverage build): {chosen_text}.",
    ]
    order = {t: i for i, t in enumerate(names)}
    args.out.write_text("\n".join(header + sorted(chosen, key=order.get)) + "\n")


if __name__ == "__main__":
    main()
