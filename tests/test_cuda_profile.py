"""tests/cuda_profile.txt names the tests CI runs on the emulated CUDA device by pytest node id. A test renamed or
re-parametrised (e.g. a case list sliced differently after a case was added) leaves an id that pytest refuses
with "not found", and that only shows in CI's emulator step, after the whole suite passed: check it here."""
import pathlib
import subprocess
import sys

TESTS = pathlib.Path(__file__).parent


def test_every_profile_id_names_a_collected_test():
    profile = [line.strip() for line in (TESTS / "cuda_profile.txt").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    run = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "tests"],
                         cwd=TESTS.parent, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    collected = {line for line in run.stdout.splitlines() if "::" in line}
    # An id without parameters selects every parametrisation of that test.
    parents = {node.split("[", 1)[0] for node in collected}
    missing = [node for node in profile if node not in collected and node not in parents]
    assert not missing, f"tests/cuda_profile.txt names {len(missing)} tests pytest does not collect: {missing}"
