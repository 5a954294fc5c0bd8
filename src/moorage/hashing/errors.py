"""Exceptions raised by :mod:`moorage.hashing`."""

from __future__ import annotations


class HashingError(Exception):
    """Base class of every error raised by :mod:`moorage.hashing`."""


class UnsupportedAlgorithmError(HashingError, ValueError):
    """The algorithm is not one of ``sha256``, ``sha512`` or ``sha1``."""


class HashingUnavailableError(HashingError, RuntimeError):
    """No usable libcrypto was found, or it failed the import-time self-test."""


class InvalidHashStateError(HashingError, ValueError):
    """An exported state is corrupt, truncated, foreign or from an incompatible build."""
