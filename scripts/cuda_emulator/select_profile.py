"""Chooses the CUDA test profile (tests/cuda_profile.txt) by coverage of src/cuda instead of by hand.

Runs a pool of tests (default: every test of the suite that runs on the "cuda" device, `-k cuda`) on a
coverage build of the emulator, takes each test's gcov counters alone (__gcov_reset before it, __gcov_dump
after it, exported by emulator.cmake), and picks greedily the tests that add the most lines, branches and
function instances (template instances: one per dtype) of src/cuda not yet covered per second they take,
until the selection covers all the pool covers. The tests in ALWAYS are taken first whatever they cover:
they check what coverage cannot see (every output element written, the caching allocator's reuse).
Prints the pool's and the selection's coverage and writes the profile.

Usage: bash scripts/cuda_emulator/build.sh BUILD_DIR -DCONVLAB_EMULATOR_COVERAGE=ON  (or check.sh coverage)
       python scripts/cuda_emulator/select_profile.py BUILD_DIR [--out tests/cuda_profile.txt] [pytest args]
With pytest args the pool is those tests instead of `tests -k cuda`.
The same file is the pytest plugin that records each test (loaded with -p select_profile)."""
import argparse
import ctypes
import json
import multiprocessing
import os
import pathlib
import shutil
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


# ---- the pytest plugin: one directory of .gcda files per test ------------------------------------------------

class Recorder:
    def __init__(self, build, out):
        import convlab
        library = ctypes.CDLL(convlab._C.__file__)  # the same library, so the same counters
        self.reset, self.dump = getattr(library, "__gcov_reset"), getattr(library, "__gcov_dump")
        self.build, self.out, self.seconds, self.left_out = build, out, {}, []
        for f in coverage.emulated_gcda(build):
            f.unlink()

    def pytest_runtest_setup(self, item):
        self.reset()
        self.start = time.perf_counter()

    def pytest_runtest_teardown(self, item, nextitem):
        seconds = time.perf_counter() - self.start
        self.dump()
        test_dir = self.out / f"{len(self.seconds):05d}"
        test_dir.mkdir()
        for gcda in coverage.emulated_gcda(self.build):
            shutil.move(gcda, test_dir / gcda.name)
            (test_dir / gcda.with_suffix(".gcno").name).symlink_to(gcda.with_suffix(".gcno"))
        self.seconds[item.nodeid] = (test_dir.name, seconds)

    def pytest_runtest_logreport(self, report):
        if report.failed or report.skipped:
            self.left_out.append(report.nodeid)

    def pytest_sessionfinish(self, session):
        (self.out / "tests.json").write_text(json.dumps({"tests": self.seconds, "left_out": self.left_out}))


def pytest_configure(config):
    if "SELECT_PROFILE_OUT" in os.environ:
        config.pluginmanager.register(Recorder(pathlib.Path(os.environ["SELECT_PROFILE_BUILD"]),
                                               pathlib.Path(os.environ["SELECT_PROFILE_OUT"])))


# ---- the selection -------------------------------------------------------------------------------------------

def covered(test_dir):
    return coverage.read(sorted(test_dir.glob("*.gcda")), SRC).covered() if any(test_dir.glob("*.gcda")) else set()


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
    args, pool = parser.parse_known_args()
    pool = pool or ["tests", "-k", "cuda"]
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, SELECT_PROFILE_BUILD=str(args.build.resolve()), SELECT_PROFILE_OUT=tmp,
                   CONVLAB_CUDA_NO_CACHING="1", PYTHONPATH=f"{pathlib.Path(__file__).parent}:{os.environ['PYTHONPATH']}")
        # Failures and skips are reported and left out of the pool; the caching tests need the cache on.
        subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "select_profile",
                        *pool, ALWAYS[0], *[f"--deselect={t}" for t in ALWAYS[1:]]], cwd=ROOT, env=env)
        env.pop("CONVLAB_CUDA_NO_CACHING")
        (pathlib.Path(tmp) / "caching").mkdir()
        subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "select_profile",
                        *ALWAYS[1:]], cwd=ROOT, env=dict(env, SELECT_PROFILE_OUT=f"{tmp}/caching"))
        runs = {}
        for d in (pathlib.Path(tmp), pathlib.Path(tmp) / "caching"):
            recorded = json.loads((d / "tests.json").read_text())
            left_out = set(recorded["left_out"])
            runs.update({t: (d / sub, s) for t, (sub, s) in recorded["tests"].items() if t not in left_out})
            if left_out:
                print(f"select_profile: left out (failed or skipped): {sorted(left_out)}")
        names = list(runs)
        with multiprocessing.Pool() as workers:
            covers = dict(zip(names, workers.map(covered, [runs[t][0] for t in names])))
        seconds = {t: runs[t][1] for t in names}
        chosen = select(covers, seconds)
        # Every line, branch and function of src/cuda: each test's dump holds all of them, most at zero.
        items = coverage.read(sorted(runs[names[0]][0].glob("*.gcda")), SRC).items()
    counts = lambda tests: {k: (sum(i[0] == k for i in set().union(*(covers[t] for t in tests))),
                                sum(i[0] == k for i in items)) for k in "lbf"}
    summary = lambda c: ", ".join(f"{what} {c[k][0]}/{c[k][1]}" for k, what in zip("lbf", ("lines", "branches", "functions")))
    pool_text, chosen_text = summary(counts(names)), summary(counts(chosen))
    print(f"pool: {len(names)} tests, {sum(seconds.values()):.0f} s, {pool_text}")
    print(f"profile: {len(chosen)} tests, {sum(seconds[t] for t in chosen):.0f} s, {chosen_text}")
    order = {t: i for i, t in enumerate(names)}
    header = [
        "# The CUDA test profile: what scripts/cuda_emulator/check.sh runs on the emulated device in CI (pytest",
        "# node ids, one a line). Written by scripts/cuda_emulator/select_profile.py (docs/cuda_emulator.md): the",
        "# tests it must always run (initcheck, the caching allocator) and then, greedily, the tests that add most",
        "# of src/cuda's gcov lines, branches and function instances per second, until they cover all that the",
        f"# pool ({' '.join(pool)}: {len(names)} tests that ran on the emulator) covers:",
        f"# {pool_text}.",
        f"# Selected: {len(chosen)} tests, {sum(seconds[t] for t in chosen):.0f} s in the coverage build.",
    ]
    args.out.write_text("\n".join(header + sorted(chosen, key=order.get)) + "\n")


if __name__ == "__main__":
    main()
