"""The package's version, from its installed metadata (pyproject.toml is the one place it is written).

A module of its own so that the modules that record it (in manifests and results) need not import the package's
``__init__``, which imports them: no import cycle."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("likra")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"
