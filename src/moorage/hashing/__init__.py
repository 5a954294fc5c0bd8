"""Resumable hashing for chunked blob uploads.

:class:`ResumableHasher` is SHA-256/SHA-512/SHA-1 whose running state can be exported as bytes
after every chunk and resumed on another worker; :class:`PieceHasher` does the same for
BitTorrent piece hashes; :func:`digest_stream` hashes a file object in large reads.

The mechanism is OpenSSL's low-level ``SHA*_Init/Update/Final`` API called through ctypes on a
context struct we own (see :mod:`moorage.hashing._libcrypto`); speed matches :mod:`hashlib`.
"""

from __future__ import annotations

from moorage.hashing import _libcrypto
from moorage.hashing.errors import (
    HashingError,
    HashingUnavailableError,
    InvalidHashStateError,
    UnsupportedAlgorithmError,
)
from moorage.hashing.pieces import PieceHasher
from moorage.hashing.resumable import STATE_FORMAT_VERSION, SUPPORTED_ALGORITHMS, ResumableHasher
from moorage.hashing.stream import digest_stream


def backend_description() -> str:
    """Which libcrypto is in use, or why resumable hashing is unavailable (for logs/health)."""
    backend = _libcrypto.BACKEND
    if backend is None:
        return f"unavailable: {_libcrypto.BACKEND_ERROR}"
    return f"{backend.version} ({backend.path})"


__all__ = [
    "STATE_FORMAT_VERSION",
    "SUPPORTED_ALGORITHMS",
    "HashingError",
    "HashingUnavailableError",
    "InvalidHashStateError",
    "PieceHasher",
    "ResumableHasher",
    "UnsupportedAlgorithmError",
    "backend_description",
    "digest_stream",
]
