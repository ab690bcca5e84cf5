"""The two examples run as a newcomer runs them, and reach what their docstrings promise."""
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name, *args, timeout=600):
    return subprocess.run([sys.executable, str(EXAMPLES / name), *args], capture_output=True, text=True,
                          timeout=timeout, env=dict(os.environ))


def test_learn_edge_kernel_recovers_one_minus_one():
    result = run_example("learn_edge_kernel.py", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    kernel = [float(v) for v in re.search(r"learned kernel: \[(\S+), (\S+)\]", result.stdout).groups()]
    assert abs(kernel[0] - 1) < 1e-3 and abs(kernel[1] + 1) < 1e-3


def test_learn_edge_kernel_exits_nonzero_when_it_fails():
    result = run_example("learn_edge_kernel.py", "--device", "cpu", "--steps", "2")
    assert result.returncode == 1
    assert "FAILED" in result.stderr


def test_lenet_digits_full_run_reaches_97_percent():
    pytest.importorskip("sklearn")
    pytest.importorskip("tqdm")
    result = run_example("lenet_digits.py", "--device", "cpu")  # the default 12 epochs, as a user runs it
    assert result.returncode == 0, result.stderr
    accuracy = float(re.search(r"test accuracy: ([0-9.]+)", result.stdout).group(1))
    assert accuracy >= 0.97, result.stdout
    assert re.search(r"wall time: [0-9.]+ s", result.stdout)


def test_readme_python_blocks_run():
    """The README's tour is code a newcomer pastes: every ```python block must run as written."""
    readme = (EXAMPLES.parent / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert blocks, "the README has no python block"
    for block in blocks:
        result = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, f"README block failed:\n{block}\n{result.stderr}"


def test_gallery_quick_writes_every_picture(tmp_path):
    """gallery.py --quick writes each picture as a real, non-blank PNG into --out and prints the folder."""
    plt = pytest.importorskip("matplotlib.pyplot")
    result = run_example("gallery.py", "--quick", "--device", "cpu", "--out", str(tmp_path / "pictures"))
    assert result.returncode == 0, result.stderr
    assert f"wrote the gallery to {tmp_path / 'pictures'}" in result.stdout
    names = ["filters.png", "edge_kernel.png", "receptive_field.png", "parameters.png"]
    if importlib.util.find_spec("sklearn") and importlib.util.find_spec("tqdm"):  # lenet_digits.py's imports
        names.append("lenet.png")
    else:
        assert "lenet.png skipped" in result.stdout
    for name in names:
        path = tmp_path / "pictures" / name
        assert path.stat().st_size > 1000, name
        image = plt.imread(path)
        assert image.ndim == 3 and min(image.shape[:2]) > 100 and image.std() > 0.01, name
