"""A SHA-256/SHA-512/SHA-1 hasher whose running state can be exported as bytes and resumed.

Exported state format (version 1), all integers little-endian::

    b"MRHS"            magic
    u8  version        1
    u8  byte order     1 = little-endian host, 2 = big-endian host (the context holds host words)
    u8  name length    then the ASCII algorithm name ("sha256", "sha512", "sha1")
    u16 struct size    then that many raw bytes of OpenSSL's SHA256_CTX / SHA512_CTX / SHA_CTX
    8 bytes            BLAKE2b-64 checksum of everything before it

A state is rejected (:class:`InvalidHashStateError`) when the magic, version, checksum, byte order,
algorithm or struct size do not match this build, or when the context's own fields are
inconsistent (buffered byte count vs. message length, ``md_len``). It is an integrity check, not
authentication: states must be stored where only the registry can write them.
"""

from __future__ import annotations

import ctypes
import hashlib
import struct
import sys
from typing import Self

from moorage.hashing import _libcrypto
from moorage.hashing.errors import (
    HashingUnavailableError,
    InvalidHashStateError,
    UnsupportedAlgorithmError,
)

SUPPORTED_ALGORITHMS = ("sha256", "sha512", "sha1")
STATE_FORMAT_VERSION = 1

_MAGIC = b"MRHS"
_HEAD = struct.Struct("<4sBBB")
_SIZE = struct.Struct("<H")
_CHECKSUM_LEN = 8
_BYTE_ORDER = 1 if sys.byteorder == "little" else 2

Buffer = bytes | bytearray | memoryview


def _checksum(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=_CHECKSUM_LEN, person=b"moorage-hstate").digest()


def _spec(algorithm: str) -> _libcrypto.AlgorithmSpec:
    name = algorithm.lower()
    if name not in SUPPORTED_ALGORITHMS:
        raise UnsupportedAlgorithmError(
            f"unsupported hash algorithm {algorithm!r}; expected one of {SUPPORTED_ALGORITHMS}"
        )
    backend = _libcrypto.BACKEND
    if backend is None:
        raise HashingUnavailableError(
            f"resumable hashing needs OpenSSL's libcrypto: {_libcrypto.BACKEND_ERROR}"
        )
    return backend.specs[name]


class ResumableHasher:
    """Incremental hash whose state survives a trip through bytes (e.g. a database column).

    Not thread-safe: do not call :meth:`update` on one instance from several threads at once.
    """

    __slots__ = ("_ctx", "_spec")

    def __init__(self, algorithm: str) -> None:
        self._spec = _spec(algorithm)
        self._ctx = self._spec.new_ctx()

    @classmethod
    def new(cls, algorithm: str) -> Self:
        """Start hashing an empty message with ``algorithm`` ("sha256", "sha512" or "sha1")."""
        return cls(algorithm)

    @classmethod
    def _from_ctx(cls, spec: _libcrypto.AlgorithmSpec, raw: bytes) -> Self:
        self = cls.__new__(cls)
        self._spec = spec
        self._ctx = ctypes.create_string_buffer(raw, spec.ctx_size)
        return self

    @property
    def algorithm(self) -> str:
        """Lower-case algorithm name, as accepted by :meth:`new`."""
        return self._spec.name

    @property
    def digest_size(self) -> int:
        return self._spec.digest_size

    @property
    def block_size(self) -> int:
        return self._spec.block_size

    @property
    def bytes_hashed(self) -> int:
        """Number of message bytes fed so far (read from the context's length counters)."""
        return self._spec.bytes_hashed(self._ctx.raw)

    def update(self, data: Buffer) -> None:
        """Hash more bytes. Buffers are passed to libcrypto without copying; the GIL is released."""
        if isinstance(data, bytes):
            if data:
                self._spec.update(self._ctx, data, len(data))
        else:
            _libcrypto.update_buffer(self._spec, self._ctx, data)

    def digest(self) -> bytes:
        """Digest of the bytes so far; the running state is untouched (a copy is finalized)."""
        ctx = ctypes.create_string_buffer(self._ctx.raw, self._spec.ctx_size)
        out = ctypes.create_string_buffer(self._spec.digest_size)
        if self._spec.final(out, ctx) != 1:
            raise MemoryError(f"{self._spec.name}: Final failed")
        return out.raw

    def hexdigest(self) -> str:
        return self.digest().hex()

    def copy(self) -> Self:
        """An independent hasher with the same state."""
        return self._from_ctx(self._spec, self._ctx.raw)

    def export_state(self) -> bytes:
        """The running state as bytes (see the module docstring); never a pickle."""
        name = self._spec.name.encode("ascii")
        body = b"".join(
            (
                _HEAD.pack(_MAGIC, STATE_FORMAT_VERSION, _BYTE_ORDER, len(name)),
                name,
                _SIZE.pack(self._spec.ctx_size),
                self._ctx.raw,
            )
        )
        return body + _checksum(body)

    @classmethod
    def from_state(cls, state: bytes) -> Self:
        """Rebuild a hasher from :meth:`export_state` output, rejecting anything incompatible."""
        state = bytes(state)
        if len(state) < _HEAD.size or not state.startswith(_MAGIC):
            raise InvalidHashStateError("not a moorage resumable hash state (bad magic)")
        _, version, byte_order, name_len = _HEAD.unpack_from(state)
        if version != STATE_FORMAT_VERSION:
            raise InvalidHashStateError(
                f"hash state format version {version} is not supported "
                f"(this build reads version {STATE_FORMAT_VERSION})"
            )
        size_at = _HEAD.size + name_len
        if len(state) < size_at + _SIZE.size + _CHECKSUM_LEN:
            raise InvalidHashStateError("hash state is truncated")
        (ctx_size,) = _SIZE.unpack_from(state, size_at)
        ctx_at = size_at + _SIZE.size
        if len(state) != ctx_at + ctx_size + _CHECKSUM_LEN:
            raise InvalidHashStateError(
                f"hash state is {len(state)} bytes, header implies {ctx_at + ctx_size + 8}"
            )
        body, checksum = state[:-_CHECKSUM_LEN], state[-_CHECKSUM_LEN:]
        if _checksum(body) != checksum:
            raise InvalidHashStateError("hash state is corrupted (checksum mismatch)")
        if byte_order != _BYTE_ORDER:
            raise InvalidHashStateError(
                "hash state was exported on a host with a different byte order"
            )
        name = state[_HEAD.size : size_at].decode("ascii", "replace")
        if name not in SUPPORTED_ALGORITHMS:
            raise InvalidHashStateError(f"hash state is for unsupported algorithm {name!r}")
        spec = _spec(name)
        if ctx_size != spec.ctx_size:
            raise InvalidHashStateError(
                f"{name} state holds a {ctx_size}-byte context but this libcrypto uses "
                f"{spec.ctx_size} bytes (incompatible OpenSSL build or architecture)"
            )
        raw = state[ctx_at : ctx_at + ctx_size]
        problem = spec.check_fields(raw)
        if problem:
            raise InvalidHashStateError(f"{name} state is inconsistent: {problem}")
        return cls._from_ctx(spec, raw)

    def __repr__(self) -> str:
        return f"<ResumableHasher {self.algorithm} bytes_hashed={self.bytes_hashed}>"
