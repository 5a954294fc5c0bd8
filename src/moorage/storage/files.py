"""Durable local-file primitives for the filesystem driver: synced directories, atomic writes,
positional chunked reads."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from moorage.storage.driver import StorageError
from moorage.storage.sessions import byte_chunks
from moorage.storage.writeback import Writeback

TEMP_MARK = ".tmp-"
_ATTEMPTS = 3


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def makedirs_synced(directory: Path, stop: Path) -> None:
    """Create ``directory`` and missing parents below ``stop``, syncing each new entry."""
    missing: list[Path] = []
    current = directory
    while current != stop and not current.is_dir():
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):
            path.mkdir()
        fsync_dir(path.parent)


def remove_empty_dirs(directory: Path, stop: Path) -> None:
    """Best effort: remove ``directory`` and its parents below ``stop`` while they are empty."""
    current = directory
    while current != stop and stop in current.parents:
        try:
            current.rmdir()
        except OSError:
            return
        current = current.parent


def write_all(fd: int, chunks: Iterable[bytes], start: int = 0) -> int:
    """Write every chunk at ``fd``'s position (byte ``start`` of the file), handing each
    completed window to the disk as it goes (see ``writeback``)."""
    total = 0
    flusher = Writeback(fd, start)
    for chunk in byte_chunks(chunks):
        view = memoryview(chunk)
        while view:
            written = os.write(fd, view)
            view = view[written:]
            total += written
            flusher.wrote(written)
    return total


def atomic_write(path: Path, chunks: Iterable[bytes], root: Path) -> int:
    """Write to a temp file beside ``path``, fsync, rename over ``path``, fsync the directory.

    Missing directories below ``root`` are created. On any failure the temp file is removed and
    ``path`` is untouched.
    """
    fd, temp_name = _temp_beside(path, root)
    try:
        try:
            total = write_all(fd, chunks)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise
    fsync_dir(path.parent)
    return total


def _temp_beside(path: Path, root: Path) -> tuple[int, str]:
    for attempt in range(_ATTEMPTS):
        makedirs_synced(path.parent, root)
        try:
            return tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}{TEMP_MARK}")
        except FileNotFoundError:  # a concurrent delete pruned the fresh directory
            if attempt == _ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def sync_rename(src: Path, dst: Path, root: Path, *, sync_source: bool = True) -> None:
    """Atomically rename ``src`` over ``dst`` (creating directories below ``root``) and make the
    directory entries durable (the source's too unless ``sync_source`` is false, for a source
    directory about to be removed). FileNotFoundError if ``src`` does not exist."""
    # The directory usually exists: try first, create it only when the rename says so.
    for attempt in range(_ATTEMPTS + 1):
        try:
            os.replace(src, dst)
            break
        except FileNotFoundError:  # src is gone, or dst's directory is new or was pruned
            if attempt == _ATTEMPTS or not src.exists():
                raise
        makedirs_synced(dst.parent, root)
    fsync_dir(dst.parent)
    if sync_source and src.parent != dst.parent:
        fsync_dir(src.parent)


class FileRange(Iterator[bytes]):
    """Bytes ``[start, end)`` of an open file in ``chunk_size`` pieces via ``os.pread``.

    Memory stays one chunk whatever the object size. Owns the descriptor: closed when the range
    is exhausted, on :meth:`close`, or when the iterator is garbage collected.
    """

    def __init__(self, fd: int, start: int, end: int, chunk_size: int) -> None:
        self._fd = fd
        self._position = start
        self._end = end
        self._chunk_size = chunk_size

    def __next__(self) -> bytes:
        if self._fd < 0 or self._position >= self._end:
            self.close()
            raise StopIteration
        wanted = min(self._chunk_size, self._end - self._position)
        data = os.pread(self._fd, wanted, self._position)
        if not data:
            self.close()
            raise StorageError(f"file ended at byte {self._position}, expected {self._end}")
        self._position += len(data)
        return data

    def close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)

    def __del__(self) -> None:
        self.close()


def open_file(path: Path, flags: int = os.O_RDONLY) -> tuple[int, int]:
    """``(fd, size)`` of the regular file ``path``; FileNotFoundError for anything else."""
    fd = os.open(path, flags | os.O_CLOEXEC)
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise FileNotFoundError(f"not a regular file: {path}")
    return fd, info.st_size
