"""Runs one program of tests/programs/ under PyTorch or under convlab and saves what it hands back.

    python tests/program_runner.py torch|convlab PROGRAM.py OUT.npz

Under "convlab" the program's `import torch` (and `torch.nn`, `torch.nn.functional`, `torch.optim`, ...)
reach convlab through sys.modules aliasing only: "torch.X" is the module convlab.X, for every X in
TORCH_MODULES that convlab has (one it lacks stays unaliased, so the program's import of it fails by name).
The program runs as __main__ with runpy and leaves a dict RESULTS of name -> tensor, number or list of
numbers; each value is saved as a NumPy array under its name. Any exception propagates (exit status 1,
traceback on stderr).
"""
import importlib
import runpy
import sys
from pathlib import Path

import numpy as np

TORCH_MODULES = ["nn", "nn.functional", "nn.init", "nn.utils", "optim", "optim.lr_scheduler", "utils",
                 "utils.data"]


def alias_convlab_as_torch():
    import convlab

    sys.modules["torch"] = convlab
    for name in TORCH_MODULES:
        try:
            sys.modules["torch." + name] = importlib.import_module("convlab." + name)
        except ImportError:
            pass


def as_numpy(value):
    """A tensor of either framework through the methods both share; numbers and lists as NumPy reads them
    (a Python int stays an integer, so `.item()` returning float where PyTorch gives int shows up)."""
    if hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def main(framework, program, out):
    if framework == "convlab":
        alias_convlab_as_torch()
    sys.path.insert(0, str(Path(program).resolve().parent))  # the programs' shared _common.py
    results = runpy.run_path(program, run_name="__main__")["RESULTS"]
    np.savez(out, **{name: as_numpy(value) for name, value in results.items()})


if __name__ == "__main__":
    main(*sys.argv[1:])
