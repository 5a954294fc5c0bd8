"""Moorage: a container image registry built on Quay's registry data model."""

from importlib.metadata import PackageNotFoundError, version

try:  # the installed distribution's version: one number, kept in pyproject.toml
    __version__ = version("moorage")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"
