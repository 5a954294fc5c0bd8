"""One-shot hashing of binary file-like objects."""

from __future__ import annotations

import hashlib
from typing import BinaryIO, Protocol

from moorage.hashing.errors import UnsupportedAlgorithmError
from moorage.hashing.resumable import SUPPORTED_ALGORITHMS


class _Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


def digest_stream(fileobj: BinaryIO | _Readable, algorithm: str, chunk_size: int = 1 << 20) -> str:
    """Hex digest of everything left in ``fileobj``, read ``chunk_size`` bytes at a time.

    Uses ``readinto`` on a reused buffer when the object has it, ``read`` otherwise. This needs no
    resumable state, so it uses :mod:`hashlib` and works without libcrypto's low-level API.
    """
    name = algorithm.lower()
    if name not in SUPPORTED_ALGORITHMS:
        raise UnsupportedAlgorithmError(
            f"unsupported hash algorithm {algorithm!r}; expected one of {SUPPORTED_ALGORITHMS}"
        )
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be positive, not {chunk_size}")
    hasher = hashlib.new(name)
    readinto = getattr(fileobj, "readinto", None)
    if readinto is not None:
        buf = bytearray(chunk_size)
        view = memoryview(buf)
        while True:
            n = readinto(view)
            if not n:
                break
            hasher.update(view[:n])
    else:
        while True:
            data = fileobj.read(chunk_size)
            if not data:
                break
            hasher.update(data)
    return hasher.hexdigest()
