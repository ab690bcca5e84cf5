# The one place the version is written: convlab.__version__ imports it, setup.py reads it for the package
# metadata (pyproject.toml declares the version dynamic), so `pip show convlab` and cl.__version__ agree.
__version__ = "0.1.0"
