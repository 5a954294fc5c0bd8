"""The storage driver contract: bytes by key, nothing about repositories or images.

Shaped after CNCF Distribution's ``storagedriver.go`` (ranged read, atomic write, stat, move,
delete, list, redirect URL) plus chunked upload sessions after Quay's storage engine. Upload
session state lives in a JSON-able metadata dict that the *caller* persists (in the database),
never in process memory, so the next chunk of an upload may land on another worker process.

Keys are ``/``-separated relative paths built only by :mod:`moorage.storage.keys`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

UploadMetadata = dict[str, Any]
"""JSON-able state of an upload session; the caller stores it and hands it back on every call."""


class StorageError(Exception):
    """A storage backend failed (I/O error, corrupt session state, backend refusal)."""


class InvalidKeyError(StorageError, ValueError):
    """A key, prefix or upload session id is malformed or would escape the storage root."""


class UploadBusyError(StorageError):
    """Another request holds the upload session (see :meth:`StorageDriver.lock_upload`)."""

    def __init__(self, session_id: str) -> None:
        super().__init__(f"upload session {session_id} is in use by another request")
        self.session_id = session_id


class UploadDataLostError(StorageError):
    """The session holds fewer bytes than its committed size (lost in a crash before they
    reached the disk): it cannot continue."""


class ObjectNotFoundError(Exception):
    """The one typed not-found error: no object (or upload session) under ``key``."""

    def __init__(self, key: str) -> None:
        super().__init__(f"storage object not found: {key}")
        self.key = key


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int


@runtime_checkable
class StorageDriver(Protocol):
    """Sync storage API; the HTTP layer calls it from worker threads.

    Every method that takes a key raises :class:`InvalidKeyError` for a malformed key and
    :class:`ObjectNotFoundError` when the object (or upload session) does not exist, unless
    documented otherwise. Iterators may raise either error lazily while being consumed.
    """

    def stat(self, key: str) -> ObjectInfo:
        """Size of the object under ``key``."""
        ...

    def read(
        self, key: str, offset: int = 0, length: int | None = None, chunk_size: int = 1 << 20
    ) -> Iterator[bytes]:
        """Stream ``length`` bytes (to the end when None) from ``offset`` in ``chunk_size`` pieces.

        Never loads the object whole. A range past the end is clamped (an offset at or past the
        end yields nothing). Negative offset/length or a non-positive chunk size: ``ValueError``.
        Not-found is raised by the call itself, before iteration.
        """
        ...

    def local_path(self, key: str) -> Path | None:
        """A real file holding the object when the driver is on local disk (for ``sendfile``).

        None for drivers that do not store objects as local files.
        """
        ...

    def put(self, key: str, chunks: Iterable[bytes]) -> int:
        """Store the concatenated chunks under ``key`` atomically; return the byte count.

        Readers see the old object or the whole new one, never a part. If ``chunks`` raises, the
        exception propagates unchanged and nothing is stored (the old object, if any, remains).
        """
        ...

    def delete(self, key: str) -> None:
        """Remove the object; a missing object is fine."""
        ...

    def move(self, src: str, dst: str) -> None:
        """Move ``src`` to ``dst`` (replacing it), atomically where the backend allows."""
        ...

    def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``."""
        ...

    def list(self, prefix: str) -> Iterator[str]:
        """Keys strictly under ``prefix`` (directory semantics, recursive); ``""`` lists all.

        Order is unspecified. Upload sessions and in-flight temporary data are never listed.
        """
        ...

    def redirect_url(self, key: str, expires_in: int) -> str | None:
        """A pre-signed URL clients may fetch the object from directly, or None."""
        ...

    # Chunked upload sessions -----------------------------------------------------------------

    def initiate_upload(self) -> tuple[str, UploadMetadata]:
        """Start a session: ``(session id, initial metadata)``."""
        ...

    def lock_upload(self, session_id: str) -> AbstractContextManager[None]:
        """Exclusive use of the session while the caller appends or completes it.

        The caller re-reads its committed state (offset, metadata, hash state) *after*
        entering, writes, records the new state with a compare-and-set, then leaves; so no two
        requests ever write the same session's bytes at once, on any worker. Entering never
        waits: a session already held raises :class:`UploadBusyError`; a missing one
        :class:`ObjectNotFoundError` (or, where the lock is granted to all, the next call).
        A lock dies with its holder (a crashed process holds nothing). Drivers whose appends
        never alter bytes any committed metadata refers to (S3: each append writes new,
        uniquely named segments) may grant it to everyone: the caller's compare-and-set alone
        then decides which of two racing appends counts.
        """
        ...

    def append_upload(
        self, session_id: str, metadata: UploadMetadata, offset: int, chunks: Iterable[bytes]
    ) -> tuple[int, UploadMetadata]:
        """Write ``chunks`` at ``offset`` (the caller's last committed size); return (bytes
        written, new metadata).

        Bytes past ``offset`` left by an earlier failed or interrupted append are discarded
        first. If ``chunks`` raises, the exception propagates and the bytes of this call do
        not count: the session stays at ``offset``. An ``offset`` beyond the session's data is
        a ``ValueError`` (no holes). Call it holding :meth:`lock_upload`: two unlocked
        appends may clobber each other's bytes.
        """
        ...

    def upload_size(self, session_id: str, metadata: UploadMetadata) -> int:
        """Committed size of the session (the size recorded in ``metadata``)."""
        ...

    def read_upload(
        self, session_id: str, metadata: UploadMetadata, chunk_size: int = 1 << 20
    ) -> Iterator[bytes]:
        """Stream the committed bytes of the session."""
        ...

    def complete_upload(self, session_id: str, metadata: UploadMetadata, final_key: str) -> None:
        """Make the committed bytes the object ``final_key`` and end the session.

        If ``final_key`` already exists (content-addressed dedupe) the session data is dropped
        and the existing object is kept.
        """
        ...

    def cancel_upload(self, session_id: str, metadata: UploadMetadata) -> None:
        """Drop the session and its data; idempotent."""
        ...

    def list_uploads(self) -> Iterator[tuple[str, float]]:
        """``(session id, last-modified POSIX time)`` of every open session."""
        ...
