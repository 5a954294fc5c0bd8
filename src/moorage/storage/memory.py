"""In-process driver for fast tests: the filesystem driver's semantics over dicts, behind a lock.

Chunks are collected outside the lock and published under it, so a put or an append whose
iterator raises changes nothing. Reads stream immutable snapshots.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from moorage.storage.driver import (
    ObjectInfo,
    ObjectNotFoundError,
    UploadBusyError,
    UploadDataLostError,
    UploadMetadata,
)
from moorage.storage.keys import (
    new_session_id,
    upload_prefix,
    validate_key,
    validate_prefix,
    validate_session_id,
)
from moorage.storage.ranges import check_read_args, clamp
from moorage.storage.sessions import byte_chunks, check_offset, committed_size, metadata_for


@dataclass(slots=True)
class _Session:
    data: bytearray = field(default_factory=bytearray)
    modified: float = field(default_factory=time.time)
    held: threading.Lock = field(default_factory=threading.Lock)


class MemoryDriver:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._objects: dict[str, bytes] = {}
        self._sessions: dict[str, _Session] = {}

    # Objects ----------------------------------------------------------------------------------

    def stat(self, key: str) -> ObjectInfo:
        return ObjectInfo(key, len(self._get(key)))

    def read(
        self, key: str, offset: int = 0, length: int | None = None, chunk_size: int = 1 << 20
    ) -> Iterator[bytes]:
        check_read_args(offset, length, chunk_size)
        data = self._get(key)
        start, end = clamp(len(data), offset, length)
        return _slices(data, start, end, chunk_size)

    def local_path(self, key: str) -> Path | None:
        self._get(key)
        return None

    def put(self, key: str, chunks: Iterable[bytes]) -> int:
        validate_key(key)
        data = b"".join(byte_chunks(chunks))
        with self._lock:
            self._objects[key] = data
        return len(data)

    def delete(self, key: str) -> None:
        validate_key(key)
        with self._lock:
            self._objects.pop(key, None)

    def move(self, src: str, dst: str) -> None:
        validate_key(src)
        validate_key(dst)
        with self._lock:
            if src not in self._objects:
                raise ObjectNotFoundError(src)
            self._objects[dst] = self._objects.pop(src)

    def exists(self, key: str) -> bool:
        validate_key(key)
        with self._lock:
            return key in self._objects

    def list(self, prefix: str) -> Iterator[str]:
        validate_prefix(prefix)
        below = f"{prefix}/" if prefix else ""
        with self._lock:
            keys = sorted(key for key in self._objects if key.startswith(below))
        return iter(keys)

    def redirect_url(self, key: str, expires_in: int) -> str | None:
        validate_key(key)
        return None

    # Upload sessions --------------------------------------------------------------------------

    def initiate_upload(self) -> tuple[str, UploadMetadata]:
        session_id = new_session_id()
        with self._lock:
            self._sessions[session_id] = _Session()
        return session_id, metadata_for(0)

    @contextlib.contextmanager
    def lock_upload(self, session_id: str) -> Iterator[None]:
        held = self._session(session_id).held
        if not held.acquire(blocking=False):
            raise UploadBusyError(session_id)
        try:
            yield
        finally:
            held.release()

    def append_upload(
        self, session_id: str, metadata: UploadMetadata, offset: int, chunks: Iterable[bytes]
    ) -> tuple[int, UploadMetadata]:
        validate_session_id(session_id)
        check_offset(offset, committed_size(metadata))
        self._session(session_id)  # fail before consuming the caller's stream
        data = b"".join(byte_chunks(chunks))
        with self._lock:
            session = self._session(session_id)
            _require(session, session_id, offset)
            del session.data[offset:]
            session.data += data
            session.modified = time.time()
        return len(data), metadata_for(offset + len(data))

    def upload_size(self, session_id: str, metadata: UploadMetadata) -> int:
        size = committed_size(metadata)
        with self._lock:
            _require(self._session(session_id), session_id, size)
        return size

    def read_upload(
        self, session_id: str, metadata: UploadMetadata, chunk_size: int = 1 << 20
    ) -> Iterator[bytes]:
        check_read_args(0, None, chunk_size)
        size = committed_size(metadata)
        with self._lock:
            session = self._session(session_id)
            _require(session, session_id, size)
            data = bytes(session.data[:size])
        return _slices(data, 0, size, chunk_size)

    def complete_upload(self, session_id: str, metadata: UploadMetadata, final_key: str) -> None:
        validate_key(final_key)
        size = committed_size(metadata)
        with self._lock:
            session = self._session(session_id)
            _require(session, session_id, size)
            if final_key not in self._objects:
                self._objects[final_key] = bytes(session.data[:size])
            del self._sessions[session_id]

    def cancel_upload(self, session_id: str, metadata: UploadMetadata) -> None:
        validate_session_id(session_id)
        with self._lock:
            self._sessions.pop(session_id, None)

    def list_uploads(self) -> Iterator[tuple[str, float]]:
        with self._lock:
            sessions = sorted((sid, s.modified) for sid, s in self._sessions.items())
        return iter(sessions)

    # Helpers ----------------------------------------------------------------------------------

    def _get(self, key: str) -> bytes:
        validate_key(key)
        with self._lock:
            try:
                return self._objects[key]
            except KeyError:
                raise ObjectNotFoundError(key) from None

    def _session(self, session_id: str) -> _Session:
        """The session (call with or without the lock; dict lookups are atomic)."""
        try:
            return self._sessions[validate_session_id(session_id)]
        except KeyError:
            raise ObjectNotFoundError(upload_prefix(session_id)) from None


def _require(session: _Session, session_id: str, size: int) -> None:
    if len(session.data) < size:
        raise UploadDataLostError(
            f"upload {session_id} holds {len(session.data)} bytes, expected {size}"
        )


def _slices(data: bytes, start: int, end: int, chunk_size: int) -> Iterator[bytes]:
    view = memoryview(data)
    for position in range(start, end, chunk_size):
        yield bytes(view[position : min(position + chunk_size, end)])
