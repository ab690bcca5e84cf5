"""The corpus in tests/programs/: PyTorch programs that must run unchanged on convlab.

Each program is plain PyTorch code (`import torch`, `torch.nn as nn`, `torch.nn.functional as F`, ...) that
builds a model, starts it from weights drawn with a seeded NumPy generator (so both runs start the same),
trains it for two optimiser steps and leaves a dict RESULTS (outputs, losses, gradients, parameters,
accuracies). tests/program_runner.py runs a program in a fresh subprocess once with PyTorch and once with
convlab standing in for torch through sys.modules aliasing alone; the two runs go side by side, one thread
each, under a time bound. A program that fails on convlab, or needs an edit to run there, fails its test.

The results must agree name for name, in dtype and shape; integer and bool values exactly, float values to
1e-9 (float64) or 1e-4 (float32) of the array's largest magnitude. That floor is at least a millionth of the
largest magnitude the program returned, so arrays of pure rounding noise (the gradient of a conv bias that a
BatchNorm cancels) are not compared digit by digit.

`python tests/test_programs.py [NAME ...]` prints the table: program -> pass, or the first failure.
"""
import os
import subprocess
import sys
import tempfile
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
    largest = max((np.abs(v).max() for v in want.values() if v.dtype.kind == "f" and v.size), default=0.0)
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
        tol = TOLERANCE[expected.dtype]
        scale = max(np.abs(expected).max(initial=0.0), largest * 1e-6)
        error = np.abs(actual - expected)
        if not np.all(error <= tol * (scale + np.abs(expected))):
            raise ProgramFailure(f"{name}: {key} differs by {error.max() / scale:.2e} of "
                                 f"its largest magnitude {scale:.3g} (tolerance {tol:g})")


def check(name):
    with tempfile.TemporaryDirectory() as out_dir:
        results = run_both(name, Path(out_dir))
    compare(name, results["convlab"], results["torch"])


@pytest.mark.parametrize("name", NAMES)
def test_program(name):
    check(name)


def test_compare_accepts_rounding_and_flags_every_kind_of_difference():
    """The comparison itself: what it lets through and what it must catch."""
    want = {"w": np.array([1.0, -2.0, 3.0]), "noise": np.array([1e-17, -2e-17]),
            "pred": np.array([3, 1]), "p32": np.array([0.5, 0.25], np.float32)}
    near = {"w": want["w"] * (1 + 5e-10), "noise": np.array([-3e-17, 4e-17]), "pred": np.array([3, 1]),
            "p32": np.array([0.50002, 0.25], np.float32)}
    compare("same", near, want)
    bad = [("w", want["w"] * (1 + 1e-8)), ("w", np.array([1.0, -2.0, np.nan])), ("pred", np.array([3, 2])),
           ("pred", np.array([3.0, 1.0])), ("w", want["w"].astype(np.float32)), ("w", want["w"][:2]),
           ("p32", np.array([0.5, 0.2501], np.float32))]
    for key, value in bad:
        with pytest.raises(ProgramFailure, match=f"bad: {key} "):
            compare("bad", {**want, key: value}, want)
    with pytest.raises(ProgramFailure, match="names differ"):
        compare("missing", {k: v for k, v in want.items() if k != "pred"}, want)


def table(names):
    for name in names:
        try:
            check(name)
            outcome = "pass"
        except AssertionError as failure:
            outcome = "FAIL " + str(failure).strip().splitlines()[0]
        print(f"{name:24s} {outcome}", flush=True)


if __name__ == "__main__":
    table(sys.argv[1:] or NAMES)
