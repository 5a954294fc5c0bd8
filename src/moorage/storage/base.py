"""The wrapper applied once to every driver (after Distribution's ``driver/base/base.go``).

It validates keys and session ids before the backend sees them, turns backend-specific
not-found errors into :class:`ObjectNotFoundError` and other backend I/O errors into
:class:`StorageError` (naming driver, operation and key), and reports each call's duration to an
``on_call(operation, seconds)`` hook. Exceptions raised by the caller's own chunk iterator pass
through untouched, so a client disconnect stays a client disconnect.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from moorage.storage.driver import (
    ObjectInfo,
    ObjectNotFoundError,
    StorageDriver,
    StorageError,
    UploadMetadata,
)
from moorage.storage.keys import (
    upload_prefix,
    validate_key,
    validate_prefix,
    validate_session_id,
)

_T = TypeVar("_T")

CallHook = Callable[[str, float], None]
"""``on_call(operation, seconds)``: e.g. observe a Prometheus histogram labelled by operation."""


def no_hook(operation: str, seconds: float) -> None:
    return None


class _Source(Iterator[bytes]):
    """The caller's chunk iterator, remembering the exception it raised (if any)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self.error: BaseException | None = None

    def __next__(self) -> bytes:
        try:
            return next(self._chunks)
        except StopIteration:
            raise
        except BaseException as exc:
            self.error = exc
            raise


class CheckedDriver:
    """A :class:`StorageDriver` around another one; wrapping a CheckedDriver again is a no-op."""

    def __init__(
        self, inner: StorageDriver, on_call: CallHook | None = None, *, name: str | None = None
    ) -> None:
        if isinstance(inner, CheckedDriver):
            inner = inner.inner
        self.inner: StorageDriver = inner
        self.on_call: CallHook = on_call or no_hook
        self.name = name or type(inner).__name__
        self._not_found: tuple[type[BaseException], ...] = getattr(
            inner, "not_found_errors", (FileNotFoundError,)
        )

    def __repr__(self) -> str:
        return f"CheckedDriver({self.inner!r})"

    # Objects ----------------------------------------------------------------------------------

    def stat(self, key: str) -> ObjectInfo:
        with self._call("stat", validate_key(key)):
            return self.inner.stat(key)

    def read(
        self, key: str, offset: int = 0, length: int | None = None, chunk_size: int = 1 << 20
    ) -> Iterator[bytes]:
        with self._call("read", validate_key(key)):
            chunks = self.inner.read(key, offset, length, chunk_size)
        return self._guarded(chunks, "read", key)

    def local_path(self, key: str) -> Path | None:
        with self._call("local_path", validate_key(key)):
            return self.inner.local_path(key)

    def put(self, key: str, chunks: Iterable[bytes]) -> int:
        source = _Source(chunks)
        with self._call("put", validate_key(key), source):
            return self.inner.put(key, source)

    def delete(self, key: str) -> None:
        with self._call("delete", validate_key(key)):
            self.inner.delete(key)

    def move(self, src: str, dst: str) -> None:
        validate_key(dst)
        with self._call("move", validate_key(src)):
            self.inner.move(src, dst)

    def exists(self, key: str) -> bool:
        with self._call("exists", validate_key(key)):
            return self.inner.exists(key)

    def list(self, prefix: str) -> Iterator[str]:
        with self._call("list", validate_prefix(prefix)):
            keys = self.inner.list(prefix)
        return self._guarded(keys, "list", prefix)

    def redirect_url(self, key: str, expires_in: int) -> str | None:
        with self._call("redirect_url", validate_key(key)):
            return self.inner.redirect_url(key, expires_in)

    # Upload sessions --------------------------------------------------------------------------

    def initiate_upload(self) -> tuple[str, UploadMetadata]:
        with self._call("initiate_upload", None):
            return self.inner.initiate_upload()

    @contextlib.contextmanager
    def lock_upload(self, session_id: str) -> Iterator[None]:
        validate_session_id(session_id)
        with contextlib.ExitStack() as held:
            with self._call("lock_upload", upload_prefix(session_id)):
                held.enter_context(self.inner.lock_upload(session_id))
            yield

    def append_upload(
        self, session_id: str, metadata: UploadMetadata, offset: int, chunks: Iterable[bytes]
    ) -> tuple[int, UploadMetadata]:
        _check_session(session_id, metadata)
        if not isinstance(offset, int) or offset < 0:
            raise ValueError(f"upload offset must be an int >= 0, got {offset!r}")
        source = _Source(chunks)
        with self._call("append_upload", upload_prefix(session_id), source):
            return self.inner.append_upload(session_id, metadata, offset, source)

    def upload_size(self, session_id: str, metadata: UploadMetadata) -> int:
        _check_session(session_id, metadata)
        with self._call("upload_size", upload_prefix(session_id)):
            return self.inner.upload_size(session_id, metadata)

    def read_upload(
        self, session_id: str, metadata: UploadMetadata, chunk_size: int = 1 << 20
    ) -> Iterator[bytes]:
        _check_session(session_id, metadata)
        with self._call("read_upload", upload_prefix(session_id)):
            chunks = self.inner.read_upload(session_id, metadata, chunk_size)
        return self._guarded(chunks, "read_upload", upload_prefix(session_id))

    def complete_upload(self, session_id: str, metadata: UploadMetadata, final_key: str) -> None:
        _check_session(session_id, metadata)
        validate_key(final_key)
        with self._call("complete_upload", upload_prefix(session_id)):
            self.inner.complete_upload(session_id, metadata, final_key)

    def cancel_upload(self, session_id: str, metadata: UploadMetadata) -> None:
        _check_session(session_id, metadata)
        with self._call("cancel_upload", upload_prefix(session_id)):
            self.inner.cancel_upload(session_id, metadata)

    def list_uploads(self) -> Iterator[tuple[str, float]]:
        with self._call("list_uploads", None):
            sessions = self.inner.list_uploads()
        return self._guarded(sessions, "list_uploads", None)

    # Error tagging and timing -----------------------------------------------------------------

    def _call(self, operation: str, key: str | None, source: _Source | None = None) -> _Call:
        return _Call(self, operation, key, source)

    @contextlib.contextmanager
    def _translated(
        self, operation: str, key: str | None, source: _Source | None = None
    ) -> Iterator[None]:
        try:
            yield
        except Exception as exc:
            translated = self._translate(exc, operation, key, source)
            if translated is None:
                raise
            raise translated from exc

    def _translate(
        self, exc: BaseException, operation: str, key: str | None, source: _Source | None
    ) -> BaseException | None:
        """The exception to raise instead of ``exc`` (raised from it), or None to let it
        pass unchanged."""
        if isinstance(exc, ObjectNotFoundError | StorageError) or not isinstance(exc, Exception):
            return None
        if source is not None and exc is source.error:
            return None
        if isinstance(exc, self._not_found) and key is not None:
            return ObjectNotFoundError(key)
        if isinstance(exc, OSError):
            where = f" {key}" if key is not None else ""
            return StorageError(f"{self.name} {operation}{where}: {exc}")
        return None

    def _guarded(self, items: Iterator[_T], operation: str, key: str | None) -> Iterator[_T]:
        try:
            with self._translated(operation, key):
                yield from items
        finally:
            close = getattr(items, "close", None)
            if callable(close):
                close()


class _Call:
    """Times one driver call and translates its errors (a plain class: this wraps every
    storage call, and a generator-based context manager costs several times more)."""

    __slots__ = ("driver", "key", "operation", "source", "started")

    def __init__(
        self, driver: CheckedDriver, operation: str, key: str | None, source: _Source | None
    ) -> None:
        self.driver, self.operation, self.key, self.source = driver, operation, key, source
        self.started = 0.0

    def __enter__(self) -> None:
        self.started = time.perf_counter()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            if exc is not None:
                translated = self.driver._translate(exc, self.operation, self.key, self.source)
                if translated is not None:
                    raise translated from exc
        finally:
            with contextlib.suppress(Exception):  # metrics never fail a storage call
                self.driver.on_call(self.operation, time.perf_counter() - self.started)


def _check_session(session_id: str, metadata: UploadMetadata) -> None:
    validate_session_id(session_id)
    if not isinstance(metadata, dict):
        raise TypeError(f"upload metadata must be a dict, not {type(metadata).__name__}")
