"""The corpus in tests/programs/: PyTorch programs that must run unchanged on convlab.

Each program is plain PyTorch code (`import torch`, `torch.nn as nn`, `torch.nn.functional as F`, ...) that
builds a model, starts it from weights drawn with a seeded NumPy generator (so both runs start the same),
trains it for two optimiser steps and leaves a dict RESULTS (outputs, losses, gradients, parameters,
accuracies). tests/program_runner.py runs a program in a fresh subprocess once with PyTorch and once with
convlab standing in for torch through sys.modules aliasing alone; the two runs go side by side, one thread
each, under a time bound. A program that fails on convlab, or needs an edit to run there, fails its test.
All selected programs start together, as many at a time as there are cores: the PyTorch side (mostly
importing torch) takes ~4 s of CPU per program and the convlab side under 1 s, so one program at a time would
leave a core idle.

The results must agree name for name, in dtype and shape; integer and bool values exactly, float values to
1e-9 of each array's largest magnitude in a float64 program, 1e-4 in one that returns any float32 array (its
losses come back through .item() as Python floats, but were computed in float32). An array made by cancelling
large terms carries rounding error of the terms' size, not its own (the gradient of a conv bias that a
BatchNorm cancels is pure noise), so errors up to 100 machine epsilons of the largest magnitude the program
returned pass too.

`python tests/test_programs.py [NAME ...]` prints the table: program -> pass, or the first failure.
"""
import importlib.util
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
PROGRAMS = HERE / "programs"
RUNNER = HERE / "program_runner.py"
NAMES = sorted(p.stem for p in PROGRAMS.glob("*.py") if not p.name.startswith("_"))
FRAMEWORKS = ("torch", "convlab")
TIMEOUT_S = 120
TOLERANCE = {np.dtype("float64"): 1e-9, np.dtype("float32"): 1e-4}
NOISE_EPSILONS = 100


class ProgramFailure(AssertionError):
    pass


def run_both(name, out_dir):
    """Runs the program under both frameworks at once; returns framework -> saved results."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    procs = {fw: subprocess.Popen([sys.executable, str(RUNNER), fw, str(PROGRAMS / f"{name}.py"),
                                   str(out_dir / f"{fw}.npz")],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for fw in FRAMEWORKS}
    errors = {}
    for fw, proc in procs.items():
        try:
            _, stderr = proc.communicate(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            errors[fw] = f"timed out after {TIMEOUT_S} s"
            continue
        if proc.returncode != 0:
            errors[fw] = stderr.strip().splitlines()[-1] if stderr.strip() else f"exit status {proc.returncode}"
            errors[fw] += "\n" + stderr
    for fw in FRAMEWORKS:  # a PyTorch failure is the program's own bug: report it first
        if fw in errors:
            raise ProgramFailure(f"{name} fails under {fw}: {errors[fw]}")
    return {fw: dict(np.load(out_dir / f"{fw}.npz")) for fw in FRAMEWORKS}


def compare(name, got, want):
    if sorted(got) != sorted(want):
        raise ProgramFailure(f"{name}: result names differ: convlab {sorted(got)} vs torch {sorted(want)}")
    floats = [v for v in want.values() if v.dtype.kind == "f"]
    precision = min((v.dtype for v in floats), key=lambda dtype: dtype.itemsize, default=np.dtype("float64"))
    tol = TOLERANCE[precision]
    largest = max((np.abs(v).max(initial=0.0) for v in floats), default=0.0)
    noise = NOISE_EPSILONS * np.finfo(precision).eps * largest
    for key, expected in want.items():
        actual = got[key]
        if actual.dtype != expected.dtype or actual.shape != expected.shape:
            raise ProgramFailure(f"{name}: {key} is {actual.dtype} {actual.shape} on convlab, "
                                 f"{expected.dtype} {expected.shape} on torch")
        if expected.dtype.kind != "f":
            if not np.array_equal(actual, expected):
                raise ProgramFailure(f"{name}: {key} differs: convlab {actual.ravel()[:8]} vs torch "
                                     f"{expected.ravel()[:8]}")
            continue
        scale = np.abs(expected).max(initial=0.0)
        error = np.abs(actual - expected)
        if not np.all(error <= tol * (scale + np.abs(expected)) + noise):
            raise ProgramFailure(f"{name}: {key} differs by {error.max():.3g} where its largest magnitude is "
                                 f"{scale:.3g} (tolerance {tol:g} of that, or {noise:.3g})")


def check(name):
    with tempfile.TemporaryDirectory() as out_dir:
        results = run_both(name, Path(out_dir))
    compare(name, results["convlab"], results["torch"])


def start_checks(pool, names):
    return {name: pool.submit(check, name) for name in names}


@pytest.fixture(scope="module")
def checks(request):
    """name -> the future of its check, for every test_program this session selected."""
    names = [item.callspec.params["name"] for item in request.session.items
             if getattr(item, "function", None) is test_program]
    with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
        yield start_checks(pool, names)


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="PyTorch, the oracle, is not installed")
@pytest.mark.parametrize("name", NAMES)
def test_program(name, checks):
    checks[name].result()


def test_compare_accepts_rounding_and_flags_every_kind_of_difference():
    """The comparison itself: what it lets through and what it must catch."""
    want = {"w": np.array([1.0, -2.0, 3.0]), "noise": np.array([1e-17, -2e-17]), "pred": np.array([3, 1])}
    near = {"w": want["w"] * (1 + 5e-10), "noise": np.array([-3e-17, 4e-17]), "pred": np.array([3, 1])}
    compare("same", near, want)
    bad = [("w", want["w"] * (1 + 1e-8)), ("w", np.array([1.0, -2.0, np.nan])), ("pred", np.array([3, 2])),
           ("pred", np.array([3.0, 1.0])), ("w", want["w"].astype(np.float32)), ("w", want["w"][:2]),
           ("noise", np.array([1e-12, 0.0]))]
    for key, value in bad:
        with pytest.raises(ProgramFailure, match=f"bad: {key} "):
            compare("bad", {**want, key: value}, want)
    with pytest.raises(ProgramFailure, match="names differ"):
        compare("missing", {k: v for k, v in want.items() if k != "pred"}, want)


def test_compare_holds_a_float32_program_to_float32_tolerance():
    """A float32 program's .item() losses come back as float64 and are held to 1e-4, not 1e-9."""
    want = {"out": np.array([0.5, 0.25], np.float32), "loss": np.array(2.0)}
    compare("same", {"out": np.array([0.50002, 0.25], np.float32), "loss": np.array(2.0001)}, want)
    with pytest.raises(ProgramFailure, match="bad: out "):
        compare("bad", {**want, "out": np.array([0.5, 0.2501], np.float32)}, want)
    with pytest.raises(ProgramFailure, match="bad: loss "):
        compare("bad", {**want, "loss": np.array(2.001)}, want)


def table(names):
    with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
        for name, future in start_checks(pool, names).items():
            try:
                future.result()
                outcome = "pass"
            except AssertionError as failure:
                outcome = "FAIL " + str(failure).strip().splitlines()[0]
            print(f"{name:24s} {outcome}", flush=True)


if __name__ == "__main__":
    table(sys.argv[1:] or NAMES)
