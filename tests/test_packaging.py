"""What a newcomer meets first: the import error of an unbuilt checkout, the version and the licence."""
import importlib.metadata
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import convlab as cl

ROOT = Path(__file__).resolve().parents[1]


def test_import_without_the_extension_says_to_build_it(tmp_path):
    """python/convlab without a compiled _C (a fresh checkout on sys.path) names the fix, not a circular import."""
    shutil.copytree(ROOT / "python" / "convlab", tmp_path / "convlab",
                    ignore=shutil.ignore_patterns("_C*", "__pycache__"))
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    run = subprocess.run([sys.executable, "-c", "import convlab"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode != 0
    assert "the extension convlab._C is not built: run pip install ." in run.stderr, run.stderr
    assert "circular import" not in run.stderr


def test_version_is_written_once_and_setup_reads_it():
    text = (ROOT / "python" / "convlab" / "_version.py").read_text()
    assert f'__version__ = "{cl.__version__}"' in text
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject and "\nversion =" not in pyproject


def test_installed_metadata_matches_the_package():
    """`pip show convlab` reads this metadata: the same version as cl.__version__, and the MIT licence."""
    try:
        meta = importlib.metadata.metadata("convlab")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("convlab runs from a PYTHONPATH build here, not a pip install: no metadata to compare")
    assert meta["Version"] == cl.__version__
    assert meta["License-Expression"] == "MIT"
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
