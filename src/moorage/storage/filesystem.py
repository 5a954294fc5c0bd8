"""Local-disk driver: one file per key under ``root``; upload sessions under ``root/_uploads``.

Writes are durable and atomic (temp file in the same directory, fsync, rename, fsync directory).
Every path is checked to resolve inside ``root`` on top of the key grammar of :mod:`.keys`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from moorage.storage import files
from moorage.storage.driver import (
    InvalidKeyError,
    ObjectInfo,
    ObjectNotFoundError,
    StorageError,
    UploadMetadata,
)
from moorage.storage.keys import (
    UPLOADS_DIR,
    new_session_id,
    upload_prefix,
    validate_key,
    validate_prefix,
    validate_session_id,
)
from moorage.storage.ranges import check_read_args, clamp
from moorage.storage.sessions import check_offset, committed_size, metadata_for

_SESSION_DATA = "data"


class FilesystemDriver:
    def __init__(self, root: Path | str) -> None:
        path = Path(root)
        path.mkdir(parents=True, exist_ok=True)
        self.root = path.resolve()
        self._uploads = self.root / UPLOADS_DIR

    def __repr__(self) -> str:
        return f"FilesystemDriver({str(self.root)!r})"

    # Objects ----------------------------------------------------------------------------------

    def stat(self, key: str) -> ObjectInfo:
        path = self._path(key)
        try:
            fd, size = files.open_file(path)
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectNotFoundError(key) from None
        os.close(fd)
        return ObjectInfo(key, size)

    def read(
        self, key: str, offset: int = 0, length: int | None = None, chunk_size: int = 1 << 20
    ) -> Iterator[bytes]:
        check_read_args(offset, length, chunk_size)
        path = self._path(key)
        try:
            fd, size = files.open_file(path)
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectNotFoundError(key) from None
        start, end = clamp(size, offset, length)
        return files.FileRange(fd, start, end, chunk_size)

    def local_path(self, key: str) -> Path | None:
        self.stat(key)
        return self._path(key)

    def put(self, key: str, chunks: Iterable[bytes]) -> int:
        return files.atomic_write(self._path(key), chunks, self.root)

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return
        files.fsync_dir(path.parent)
        files.remove_empty_dirs(path.parent, self.root)

    def move(self, src: str, dst: str) -> None:
        src_path, dst_path = self._path(src), self._path(dst)
        self.stat(src)
        if src_path == dst_path:
            return
        try:
            files.sync_rename(src_path, dst_path, self.root)
        except FileNotFoundError:
            raise ObjectNotFoundError(src) from None
        files.remove_empty_dirs(src_path.parent, self.root)

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
        except ObjectNotFoundError:
            return False
        return True

    def list(self, prefix: str) -> Iterator[str]:
        validate_prefix(prefix)
        base = self._contain(self.root / prefix) if prefix else self.root
        return self._walk(base)

    def redirect_url(self, key: str, expires_in: int) -> str | None:
        validate_key(key)
        return None

    # Upload sessions --------------------------------------------------------------------------

    # Session data is not fsynced while it grows: a session that loses bytes in a crash
    # cannot continue (every call checks the file holds the committed size) and the client
    # starts again, while the blob it becomes is fsynced, renamed and its directory fsynced
    # before anything records it. Each fsync costs milliseconds per layer of every push.

    def initiate_upload(self) -> tuple[str, UploadMetadata]:
        session_id = new_session_id()
        path = self._session_path(session_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644))
        return session_id, metadata_for(0)

    def append_upload(
        self, session_id: str, metadata: UploadMetadata, offset: int, chunks: Iterable[bytes]
    ) -> tuple[int, UploadMetadata]:
        path = self._session_path(session_id)
        check_offset(offset, committed_size(metadata))
        fd = self._open_session(session_id, path, os.O_WRONLY, need=offset)
        try:
            os.ftruncate(fd, offset)
            os.lseek(fd, offset, os.SEEK_SET)
            try:
                written = files.write_all(fd, chunks)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, offset)  # best effort; the next append truncates anyway
                raise
        finally:
            os.close(fd)
        return written, metadata_for(offset + written)

    def upload_size(self, session_id: str, metadata: UploadMetadata) -> int:
        size = committed_size(metadata)
        os.close(self._open_session(session_id, self._session_path(session_id), need=size))
        return size

    def read_upload(
        self, session_id: str, metadata: UploadMetadata, chunk_size: int = 1 << 20
    ) -> Iterator[bytes]:
        check_read_args(0, None, chunk_size)
        size = committed_size(metadata)
        fd = self._open_session(session_id, self._session_path(session_id), need=size)
        return files.FileRange(fd, 0, size, chunk_size)

    def complete_upload(self, session_id: str, metadata: UploadMetadata, final_key: str) -> None:
        path = self._session_path(session_id)
        size = committed_size(metadata)
        final_path = self._path(final_key)
        fd = self._open_session(session_id, path, os.O_WRONLY, need=size)
        try:
            if not self.exists(final_key):
                os.ftruncate(fd, size)
                os.fsync(fd)
                files.sync_rename(path, final_path, self.root, sync_source=False)
        finally:
            os.close(fd)
        self.cancel_upload(session_id, metadata)

    def cancel_upload(self, session_id: str, metadata: UploadMetadata) -> None:
        path = self._session_path(session_id)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        with contextlib.suppress(FileNotFoundError):
            path.parent.rmdir()

    def list_uploads(self) -> Iterator[tuple[str, float]]:
        try:
            entries = sorted(os.listdir(self._uploads))
        except FileNotFoundError:
            return iter(())
        return self._sessions(entries)

    # Paths ------------------------------------------------------------------------------------

    def _contain(self, path: Path) -> Path:
        """``path`` if it resolves (following symlinks) strictly inside the root."""
        real = os.path.realpath(path)
        root = str(self.root)
        if real == root or os.path.commonpath([real, root]) != root:
            raise InvalidKeyError(f"storage path escapes the root: {path}")
        return path

    def _path(self, key: str) -> Path:
        return self._contain(self.root / validate_key(key))

    def _session_path(self, session_id: str) -> Path:
        return self._contain(self.root / upload_prefix(session_id) / _SESSION_DATA)

    def _open_session(
        self, session_id: str, path: Path, flags: int = os.O_RDONLY, *, need: int
    ) -> int:
        """An fd on the session's data, which must hold at least ``need`` bytes."""
        try:
            fd, size = files.open_file(path, flags)
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectNotFoundError(upload_prefix(session_id)) from None
        if size < need:
            os.close(fd)
            raise StorageError(f"upload {session_id} holds {size} bytes, expected {need}")
        return fd

    def _walk(self, base: Path) -> Iterator[str]:
        for directory, dirnames, filenames in os.walk(base):
            current = Path(directory)
            if current == self.root:
                dirnames[:] = [name for name in dirnames if name != UPLOADS_DIR]
            dirnames.sort()
            for name in sorted(filenames):
                key = (current / name).relative_to(self.root).as_posix()
                with contextlib.suppress(InvalidKeyError):
                    yield validate_key(key)

    def _sessions(self, entries: Sequence[str]) -> Iterator[tuple[str, float]]:
        for name in entries:
            try:
                validate_session_id(name)
                modified = (self._uploads / name / _SESSION_DATA).stat().st_mtime
            except (InvalidKeyError, FileNotFoundError, NotADirectoryError):
                continue
            yield name, modified
