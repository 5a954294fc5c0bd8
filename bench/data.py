"""Cheap, reproducible, distinct blob contents streamed in chunks (never whole in memory)."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB
PATTERN_SIZE = 4 * MIB
_HEADER = 32  # bytes of each pattern-sized chunk replaced by a per-blob, per-chunk hash

_PATTERN = random.Random(0x6D6F6F72).randbytes(PATTERN_SIZE)  # noqa: S311 - not for security


def _chunk(salt: str, index: int) -> bytes:
    header = hashlib.sha256(f"{salt}:{index}".encode()).digest()
    return header + _PATTERN[_HEADER:]


@dataclass(frozen=True)
class BlobSpec:
    """A blob of ``size`` bytes: the random pattern, its first 32 bytes per chunk salted."""

    salt: str
    size: int
    _digest: list[str] = field(default_factory=list, compare=False, repr=False)

    def chunks(self, chunk_size: int = PATTERN_SIZE) -> Iterator[bytes]:
        """The content in pieces of at most ``chunk_size`` bytes (a divisor of 4 MiB or a
        multiple of it)."""
        if chunk_size >= PATTERN_SIZE:
            yield from self._joined(chunk_size)
            return
        for piece in self._joined(PATTERN_SIZE):
            view = memoryview(piece)
            for start in range(0, len(piece), chunk_size):
                yield bytes(view[start : start + chunk_size])

    def _joined(self, chunk_size: int) -> Iterator[bytes]:
        per = max(1, chunk_size // PATTERN_SIZE)
        remaining = self.size
        index = 0
        while remaining > 0:
            parts = []
            for _ in range(per):
                if remaining <= 0:
                    break
                part = _chunk(self.salt, index)
                index += 1
                if len(part) > remaining:
                    part = part[:remaining]
                remaining -= len(part)
                parts.append(part)
            yield parts[0] if len(parts) == 1 else b"".join(parts)

    def range_chunks(self, start: int, length: int) -> bytes:
        """``length`` bytes from ``start`` (for PATCH bodies; start a multiple of 4 MiB)."""
        assert start % PATTERN_SIZE == 0
        out = []
        index = start // PATTERN_SIZE
        left = min(length, self.size - start)
        while left > 0:
            part = _chunk(self.salt, index)[:left]
            out.append(part)
            left -= len(part)
            index += 1
        return b"".join(out)

    @property
    def digest(self) -> str:
        """``sha256:<hex>`` of the content, computed once (outside any timed section)."""
        if not self._digest:
            hasher = hashlib.sha256()
            for piece in self.chunks():
                hasher.update(piece)
            self._digest.append("sha256:" + hasher.hexdigest())
        return self._digest[0]


def small_blob(data: bytes) -> tuple[bytes, str]:
    """An in-memory blob (configs, manifests) and its digest."""
    return data, "sha256:" + hashlib.sha256(data).hexdigest()
