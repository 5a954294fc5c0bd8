"""Local-disk driver: one file per key under ``root``; upload sessions under ``root/_uploads``.

Writes are durable and atomic (temp file in the same directory, fsync, rename, fsync directory).
Every path is checked to resolve inside ``root`` on top of the key grammar of :mod:`.keys`: the
grammar rules out ``..`` and absolute paths, so only a symbolic link can lead out. The hot paths
(upload sessions, blob reads) prove that cheaply: directories below the root are checked once
with ``lstat`` to be real directories, not links, and remembered until this driver removes
directories; files are opened with ``O_NOFOLLOW``. A link anywhere falls back to resolving the
whole path, which is what the other operations always do.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from moorage.storage import files
from moorage.storage.driver import (
    InvalidKeyError,
    ObjectInfo,
    ObjectNotFoundError,
    UploadBusyError,
    UploadDataLostError,
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

# Sessions are single files, ``_uploads/<id>``. Earlier versions made a directory per session
# holding this file: one more mkdir and rmdir per layer pushed. Those are still listed and
# removed (so cleanup ends them) but not continued: their client starts the upload again.
_LEGACY_SESSION_DATA = "data"
_SAFE_DIRS_CAP = 4096  # remembered directories; beyond that, start over


class FilesystemDriver:
    def __init__(self, root: Path | str) -> None:
        path = Path(root)
        path.mkdir(parents=True, exist_ok=True)
        self.root = path.resolve()
        self._uploads = self.root / UPLOADS_DIR
        # Relative paths of directories seen (lstat) to be real directories below the root.
        self._safe_dirs: set[str] = set()

    def __repr__(self) -> str:
        return f"FilesystemDriver({str(self.root)!r})"

    # Objects ----------------------------------------------------------------------------------

    def stat(self, key: str) -> ObjectInfo:
        fd, size = self._open_object(key)
        os.close(fd)
        return ObjectInfo(key, size)

    def read(
        self, key: str, offset: int = 0, length: int | None = None, chunk_size: int = 1 << 20
    ) -> Iterator[bytes]:
        check_read_args(offset, length, chunk_size)
        fd, size = self._open_object(key)
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
        self._prune(path.parent)

    def move(self, src: str, dst: str) -> None:
        src_path, dst_path = self._path(src), self._path(dst)
        self.stat(src)
        if src_path == dst_path:
            return
        try:
            files.sync_rename(src_path, dst_path, self.root)
        except FileNotFoundError:
            raise ObjectNotFoundError(src) from None
        self._prune(src_path.parent)

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
        # O_EXCL: a fresh id names nothing yet, and an existing entry (a link) is refused,
        # never written through.
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
        try:
            fd = os.open(path, flags, 0o644)
        except FileNotFoundError:  # the first session: no _uploads yet
            files.makedirs_synced(self._uploads, self.root)
            fd = os.open(path, flags, 0o644)
        os.close(fd)
        return session_id, metadata_for(0)

    @contextlib.contextmanager
    def lock_upload(self, session_id: str) -> Iterator[None]:
        """An exclusive ``flock`` on the session file: shared by every process on this host
        (and over NFS, which maps it to a POSIX lock), and dropped by the kernel when its
        holder dies. The lock is on the open file, so after taking it the path must still
        name that file: a session completed (renamed into a blob) or cancelled while this
        request waited to open it is gone, not locked."""
        path = self._session_path(session_id)
        fd, _ = self._open(path, os.O_RDONLY, upload_prefix(session_id))
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise UploadBusyError(session_id) from None
            if not _same_file(fd, path):
                raise ObjectNotFoundError(upload_prefix(session_id))
            yield
        finally:
            os.close(fd)  # releases the lock

    def append_upload(
        self, session_id: str, metadata: UploadMetadata, offset: int, chunks: Iterable[bytes]
    ) -> tuple[int, UploadMetadata]:
        path = self._session_path(session_id)
        check_offset(offset, committed_size(metadata))
        fd, size = self._open_session(session_id, path, os.O_WRONLY, need=offset)
        try:
            if size != offset:  # bytes of an earlier failed append: discarded
                os.ftruncate(fd, offset)
            if offset:
                os.lseek(fd, offset, os.SEEK_SET)
            try:
                written = files.write_all(fd, chunks, offset)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, offset)  # best effort; the next append truncates anyway
                raise
        finally:
            os.close(fd)
        return written, metadata_for(offset + written)

    def upload_size(self, session_id: str, metadata: UploadMetadata) -> int:
        size = committed_size(metadata)
        os.close(self._open_session(session_id, self._session_path(session_id), need=size)[0])
        return size

    def read_upload(
        self, session_id: str, metadata: UploadMetadata, chunk_size: int = 1 << 20
    ) -> Iterator[bytes]:
        check_read_args(0, None, chunk_size)
        size = committed_size(metadata)
        fd, _ = self._open_session(session_id, self._session_path(session_id), need=size)
        return files.FileRange(fd, 0, size, chunk_size)

    def complete_upload(self, session_id: str, metadata: UploadMetadata, final_key: str) -> None:
        path = self._session_path(session_id)
        size = committed_size(metadata)
        final_path = self._checked_path(final_key)
        fd, held = self._open_session(session_id, path, os.O_WRONLY, need=size)
        moved = False
        try:
            if not _is_file(final_path):  # else the same bytes are there already (dedupe)
                if held != size:
                    os.ftruncate(fd, size)
                os.fsync(fd)
                # The source directory (_uploads) is not synced: a session file lost
                # from it in a crash is only an abandoned upload.
                files.sync_rename(path, final_path, self.root, sync_source=False)
                moved = True
        finally:
            os.close(fd)
        if not moved:
            self._drop_session(path)

    def cancel_upload(self, session_id: str, metadata: UploadMetadata) -> None:
        self._drop_session(self._session_path(session_id))

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

    def _checked_path(self, key: str) -> Path:
        """The path of ``key`` with its directories checked (see the module docstring); the
        last component is the caller's to open without following links."""
        relative = validate_key(key)
        path = self.root / relative
        self._check_dirs(relative.rpartition("/")[0], path)
        return path

    def _check_dirs(self, relative: str, path: Path) -> None:
        """Every existing directory of ``relative`` (below the root) is a real directory;
        else ``path`` must resolve inside the root. Missing ones are fine: the driver makes
        real directories, and opening through a missing one fails."""
        if not relative or relative in self._safe_dirs:
            return
        prefix = ""
        for part in relative.split("/"):
            prefix = f"{prefix}/{part}" if prefix else part
            if prefix in self._safe_dirs:
                continue
            try:
                mode = os.lstat(self.root / prefix).st_mode
            except (FileNotFoundError, NotADirectoryError):
                return
            if not stat.S_ISDIR(mode):  # a link (or a file): the thorough check decides
                self._contain(path)
                return
            if len(self._safe_dirs) >= _SAFE_DIRS_CAP:
                self._safe_dirs.clear()
            self._safe_dirs.add(prefix)

    def _open_object(self, key: str) -> tuple[int, int]:
        path = self._checked_path(key)
        return self._open(path, os.O_RDONLY, key)

    def _open(self, path: Path, flags: int, missing: str) -> tuple[int, int]:
        """``(fd, size)`` of a regular file; a link as the last component is followed only
        when it resolves inside the root. ObjectNotFoundError names ``missing``."""
        try:
            try:
                return files.open_file(path, flags | os.O_NOFOLLOW)
            except OSError as exc:
                if exc.errno != errno.ELOOP:
                    raise
            return files.open_file(self._contain(path), flags)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise ObjectNotFoundError(missing) from None

    def _session_path(self, session_id: str) -> Path:
        path = self.root / upload_prefix(session_id)
        # The session file itself is opened without following links.
        self._check_dirs(UPLOADS_DIR, path)
        return path

    def _open_session(
        self, session_id: str, path: Path, flags: int = os.O_RDONLY, *, need: int
    ) -> tuple[int, int]:
        """``(fd, size)`` of the session's data, which must hold at least ``need`` bytes."""
        fd, size = self._open(path, flags, upload_prefix(session_id))
        if size < need:
            os.close(fd)
            raise UploadDataLostError(f"upload {session_id} holds {size} bytes, expected {need}")
        return fd, size

    def _drop_session(self, path: Path) -> None:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except IsADirectoryError:  # a session of an earlier version (see above)
            with contextlib.suppress(FileNotFoundError):
                (path / _LEGACY_SESSION_DATA).unlink()
            with contextlib.suppress(OSError):
                path.rmdir()

    def _prune(self, directory: Path) -> None:
        """Removes ``directory`` and its parents while empty; forgets the checked ones."""
        files.remove_empty_dirs(directory, self.root)
        self._safe_dirs.clear()

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
                path = self._uploads / name
                info = os.lstat(path)
                if stat.S_ISDIR(info.st_mode):  # an earlier version's session directory
                    info = os.lstat(path / _LEGACY_SESSION_DATA)
            except (InvalidKeyError, FileNotFoundError, NotADirectoryError):
                continue
            if stat.S_ISREG(info.st_mode):
                yield name, info.st_mtime


def _is_file(path: Path) -> bool:
    """A regular file, not a link: a link in a blob's place is replaced, never trusted."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return False


def _same_file(fd: int, path: Path) -> bool:
    try:
        named = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    held = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)
