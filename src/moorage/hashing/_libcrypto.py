"""ctypes binding to OpenSSL's low-level ``SHA*_Init/Update/Final`` context API.

``hashlib`` cannot export its running state, but the (deprecated in OpenSSL 3, still exported)
low-level API works on a plain C struct that we own: its raw bytes *are* the state. This module
finds libcrypto, binds the functions and, at import, checks that each context struct has the size
and field layout we rely on by hashing a known vector (with a canary after the struct, a
mid-stream copy of the raw bytes into a fresh buffer, and a look at the length/``num`` fields).

If anything is off, :data:`BACKEND` is ``None`` and :data:`BACKEND_ERROR` says why; the public
classes raise :class:`~moorage.hashing.errors.HashingUnavailableError` at construction. There is
deliberately no pure-Python fallback: at a few MB/s it would be useless for registry blobs.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

CtxBuffer = ctypes.Array[ctypes.c_char]

# Struct layouts of OpenSSL's SHA_CTX / SHA256_CTX / SHA512_CTX on LP64 Linux (x86_64, aarch64):
#   SHA_CTX    : u32 h0..h4 | u32 Nl, Nh (bit count) | u32 data[16] | u32 num               =  96
#   SHA256_CTX : u32 h[8]   | u32 Nl, Nh            | u32 data[16] | u32 num, md_len       = 112
#   SHA512_CTX : u64 h[8]   | u64 Nl, Nh            | u8 p[128]    | u32 num, md_len       = 216
# (name, prefix, struct size, digest size, block size, Nl offset, Nl/Nh width, num, md_len offset)
_LAYOUTS: tuple[tuple[str, str, int, int, int, int, int, int, int | None], ...] = (
    ("sha1", "SHA1", 96, 20, 64, 20, 4, 92, None),
    ("sha256", "SHA256", 112, 32, 64, 32, 4, 104, 108),
    ("sha512", "SHA512", 216, 64, 128, 64, 8, 208, 212),
)

_CANARY = b"\xa5" * 64


@dataclass(frozen=True, slots=True)
class AlgorithmSpec:
    """One algorithm's bound functions and the context struct layout we validated."""

    name: str
    ctx_size: int
    digest_size: int
    block_size: int
    length_offset: int
    length_width: int
    num_offset: int
    md_len_offset: int | None
    init: Callable[[CtxBuffer], int]
    update: Callable[[CtxBuffer, Any, int], int]
    final: Callable[[CtxBuffer, CtxBuffer], int]

    def new_ctx(self) -> CtxBuffer:
        """Return a freshly initialised context."""
        ctx = ctypes.create_string_buffer(self.ctx_size)
        if self.init(ctx) != 1:
            raise MemoryError(f"{self.name}: Init failed")
        return ctx

    def bytes_hashed(self, raw: bytes) -> int:
        """Message length in bytes so far, from the context's ``Nl``/``Nh`` bit counters."""
        w = self.length_width
        lo = int.from_bytes(raw[self.length_offset : self.length_offset + w], sys.byteorder)
        hi = int.from_bytes(raw[self.length_offset + w : self.length_offset + 2 * w], sys.byteorder)
        return ((hi << (8 * w)) | lo) >> 3

    def num(self, raw: bytes) -> int:
        """Bytes buffered in the context's partial block."""
        return int.from_bytes(raw[self.num_offset : self.num_offset + 4], sys.byteorder)

    def md_len(self, raw: bytes) -> int | None:
        """The ``md_len`` field (SHA-256/512 only)."""
        if self.md_len_offset is None:
            return None
        return int.from_bytes(raw[self.md_len_offset : self.md_len_offset + 4], sys.byteorder)

    def check_fields(self, raw: bytes) -> str | None:
        """Return why ``raw`` is not a plausible context of this algorithm, or ``None``."""
        if len(raw) != self.ctx_size:
            return f"context is {len(raw)} bytes, expected {self.ctx_size}"
        length, num = self.bytes_hashed(raw), self.num(raw)
        if num != length % self.block_size:
            return f"buffered byte count {num} does not match message length {length}"
        md_len = self.md_len(raw)
        if md_len is not None and md_len != self.digest_size:
            return f"md_len is {md_len}, expected {self.digest_size}"
        return None


@dataclass(frozen=True, slots=True)
class Backend:
    """The libcrypto in use and its validated algorithms."""

    path: str
    version: str
    specs: dict[str, AlgorithmSpec]


class _PyBuffer(ctypes.Structure):
    _fields_ = (
        ("buf", ctypes.c_void_p),
        ("obj", ctypes.c_void_p),
        ("len", ctypes.c_ssize_t),
        ("itemsize", ctypes.c_ssize_t),
        ("readonly", ctypes.c_int),
        ("ndim", ctypes.c_int),
        ("format", ctypes.c_char_p),
        ("shape", ctypes.c_void_p),
        ("strides", ctypes.c_void_p),
        ("suboffsets", ctypes.c_void_p),
        ("internal", ctypes.c_void_p),
    )


_get_buffer = ctypes.pythonapi.PyObject_GetBuffer
_get_buffer.argtypes = (ctypes.py_object, ctypes.POINTER(_PyBuffer), ctypes.c_int)
_get_buffer.restype = ctypes.c_int
_release_buffer = ctypes.pythonapi.PyBuffer_Release
_release_buffer.argtypes = (ctypes.POINTER(_PyBuffer),)
_release_buffer.restype = None
_PYBUF_SIMPLE = 0


def update_buffer(spec: AlgorithmSpec, ctx: CtxBuffer, data: bytearray | memoryview) -> None:
    """Feed any C-contiguous buffer (read-only or not) to ``spec.update`` without copying.

    ``PyObject_GetBuffer`` pins the buffer for the duration of the call; the libcrypto call itself
    releases the GIL (``ctypes.CDLL``). Non-contiguous buffers are copied once.
    """
    view = _PyBuffer()
    try:
        _get_buffer(data, ctypes.byref(view), _PYBUF_SIMPLE)
    except BufferError:
        flat = memoryview(data).tobytes()
        if flat:
            spec.update(ctx, flat, len(flat))
        return
    try:
        if view.len:
            spec.update(ctx, view.buf, view.len)
    finally:
        _release_buffer(ctypes.byref(view))


def _hashlib_libcrypto() -> list[str]:
    """Paths of the libcrypto that Python's ``_hashlib`` extension is linked against."""
    try:
        import _hashlib
    except ImportError:
        return []
    found: list[str] = []
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            for line in maps:
                parts = line.split(maxsplit=5)
                if len(parts) == 6 and "libcrypto" in os.path.basename(parts[5].strip()):
                    path = parts[5].strip()
                    if path not in found:
                        found.append(path)
    except OSError:
        pass
    module_file = getattr(_hashlib, "__file__", None)
    if not found and module_file:
        try:
            out = subprocess.run(
                ["ldd", module_file], capture_output=True, text=True, timeout=10, check=False
            ).stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        found.extend(re.findall(r"libcrypto\S*\s+=>\s+(\S+)", out))
    return found


def _candidates() -> list[str]:
    names: list[str] = []
    name = ctypes.util.find_library("crypto")
    # macOS' /usr/lib/libcrypto.dylib aborts the process when loaded unversioned.
    if name and not (sys.platform == "darwin" and not os.path.isabs(name)):
        names.append(name)
    names.extend(p for p in _hashlib_libcrypto() if p not in names)
    return names


def _bind(
    lib: ctypes.CDLL, layout: tuple[str, str, int, int, int, int, int, int, int | None]
) -> AlgorithmSpec:
    name, prefix, ctx_size, digest_size, block_size, len_off, len_w, num_off, md_off = layout
    init = getattr(lib, f"{prefix}_Init")
    update = getattr(lib, f"{prefix}_Update")
    final = getattr(lib, f"{prefix}_Final")
    init.argtypes, init.restype = (ctypes.c_void_p,), ctypes.c_int
    update.argtypes = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)
    update.restype = ctypes.c_int
    final.argtypes, final.restype = (ctypes.c_void_p, ctypes.c_void_p), ctypes.c_int
    sizes = (ctx_size, digest_size, block_size, len_off, len_w, num_off, md_off)
    return AlgorithmSpec(name, *sizes, init, update, final)


def _self_test(spec: AlgorithmSpec) -> None:
    """Hash a known vector, resuming from copied raw bytes mid-way, and check the layout."""
    vector = bytes(range(256)) * 3 + b"moorage"
    size = spec.ctx_size
    first = ctypes.create_string_buffer(b"\0" * size + _CANARY, size + len(_CANARY))
    if spec.init(first) != 1:
        raise RuntimeError("Init failed")
    spec.update(first, vector[:100], 100)
    raw = first.raw
    if raw[size:] != _CANARY:
        raise RuntimeError(f"context struct is larger than the expected {size} bytes")
    problem = spec.check_fields(raw[:size])
    if problem is None and spec.bytes_hashed(raw[:size]) != 100:
        problem = "length counters not where expected"
    if problem:
        raise RuntimeError(f"unexpected context layout: {problem}")
    second = ctypes.create_string_buffer(raw[:size] + _CANARY, size + len(_CANARY))
    spec.update(second, vector[100:], len(vector) - 100)
    if spec.check_fields(second.raw[:size]) or spec.bytes_hashed(second.raw[:size]) != len(vector):
        raise RuntimeError("unexpected context layout after resuming from copied bytes")
    out = ctypes.create_string_buffer(spec.digest_size)
    spec.final(out, second)
    if second.raw[size:] != _CANARY:
        raise RuntimeError(f"context struct is larger than the expected {size} bytes")
    if out.raw != hashlib.new(spec.name, vector).digest():
        raise RuntimeError("digest of the known vector is wrong")


def _load() -> tuple[Backend | None, str | None]:
    problems: list[str] = []
    candidates = _candidates()
    if not candidates:
        return None, "libcrypto not found (ctypes.util.find_library and _hashlib's linkage)"
    for path in candidates:
        try:
            lib = ctypes.CDLL(path)
            specs = {layout[0]: _bind(lib, layout) for layout in _LAYOUTS}
            for spec in specs.values():
                try:
                    _self_test(spec)
                except RuntimeError as exc:
                    raise RuntimeError(f"{spec.name} self-test failed: {exc}") from exc
        except (OSError, AttributeError, RuntimeError) as exc:
            problems.append(f"{path}: {exc}")
            continue
        version = "unknown"
        try:
            version_fn = lib.OpenSSL_version
            version_fn.argtypes, version_fn.restype = (ctypes.c_int,), ctypes.c_char_p
            version = (version_fn(0) or b"unknown").decode("ascii", "replace")
        except AttributeError:
            pass
        return Backend(path, version, specs), None
    return None, "no usable libcrypto: " + "; ".join(problems)


BACKEND, BACKEND_ERROR = _load()
