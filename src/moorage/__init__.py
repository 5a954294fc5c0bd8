"""Moorage: a container image registry built on Quay's registry data model."""

__version__ = "0.1.0"
