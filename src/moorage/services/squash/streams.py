"""File objects over storage chunks: reading a layer (checked against its digest, then
decompressed) and writing the flattened tar while hashing it."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
from collections.abc import Iterator
from typing import IO, cast

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
BZIP2_BLOCK_MAGIC = b"\x31\x41\x59\x26\x53\x59"  # after "BZh" and the block size digit
XZ_MAGIC = b"\xfd7zXZ\x00"
BUFFER = 1 << 20


class DigestMismatchError(ValueError):
    """A stored layer's bytes do not hash to its digest."""


class ChunkReader(io.RawIOBase):
    """A readable file over an iterator of byte chunks (a storage read)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = chunk
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


class CheckedReader(io.RawIOBase):
    """Passes bytes through, hashing them; at the end they must match ``digest``."""

    def __init__(self, raw: io.RawIOBase, digest: str) -> None:
        algorithm, _, self._expected = digest.partition(":")
        self._raw, self._digest = raw, digest
        self._hash = hashlib.new(algorithm)
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self._raw.read(len(buffer))
        if not data:
            if not self._done and self._hash.hexdigest() != self._expected:
                raise DigestMismatchError(f"layer {self._digest} does not match its digest")
            self._done = True
            return 0
        self._hash.update(data)
        buffer[: len(data)] = data
        return len(data)


def decompressed(raw: io.RawIOBase) -> IO[bytes]:
    """The tar inside a layer: gzip, zstd, bzip2, xz or none, told by its first bytes
    (media types lie less often than magic numbers do). Multi-member gzip and multi-frame
    zstd (eStargz, zstd:chunked) read through."""
    buffered = io.BufferedReader(raw, BUFFER)
    head = buffered.peek(10)[:10]
    if head.startswith(GZIP_MAGIC):
        return cast(IO[bytes], gzip.GzipFile(fileobj=buffered, mode="rb"))
    if head.startswith(ZSTD_MAGIC):
        import zstandard  # only where a zstd layer is met

        reader = zstandard.ZstdDecompressor().stream_reader(buffered, read_across_frames=True)
        return cast(IO[bytes], io.BufferedReader(cast(io.RawIOBase, reader), BUFFER))
    if head[:3] == b"BZh" and head[3:4].isdigit() and head[4:10] == BZIP2_BLOCK_MAGIC:
        return cast(IO[bytes], bz2.BZ2File(buffered, mode="rb"))
    if head.startswith(XZ_MAGIC):
        return cast(IO[bytes], lzma.LZMAFile(buffered, mode="rb"))
    return cast(IO[bytes], buffered)


class HashingWriter(io.RawIOBase):
    """Writes to ``file`` and counts and hashes what passes (the flat layer's diff id)."""

    def __init__(self, file: IO[bytes]) -> None:
        self.file = file
        self.hash = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.hash.update(data)
        self.size += len(data)
        self.file.write(data)
        return len(data)
