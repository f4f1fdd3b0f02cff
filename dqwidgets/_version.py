"""The package version, from the installed package metadata (pyproject.toml is its one source)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("dqwidgets")
except PackageNotFoundError:  # a source checkout that was never installed (pip install -e . fixes it)
    __version__ = "0+unknown"
