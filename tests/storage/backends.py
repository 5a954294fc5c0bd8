"""Storage backends the driver contract suite runs against, plus shared test helpers.

Add a third entry to ``BACKENDS`` (e.g. S3 against a local MinIO, skipping when unavailable) and the
whole contract runs against it too. ``Backend.raw_entries()`` lists everything the backend
physically holds (objects, sessions, temp files), so tests can check that failures leave nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from moorage.storage import StorageDriver, create_driver
from moorage.storage.base import CheckedDriver
from moorage.storage.memory import MemoryDriver


class ClientGoneError(Exception):
    """Raised by a test's chunk iterator, standing in for a client disconnect."""


def failing(*chunks: bytes) -> Iterator[bytes]:
    """Yield ``chunks``, then fail like a request body cut short."""
    yield from chunks
    raise ClientGoneError("client went away")


def read_all(chunks: Iterable[bytes]) -> bytes:
    return b"".join(chunks)


@dataclass
class Backend:
    name: str
    driver: StorageDriver
    raw_entries: Callable[[], list[str]]


def _filesystem(tmp_path: Path) -> Backend:
    root = tmp_path / "root"
    driver = create_driver("filesystem", root=root)

    def entries() -> list[str]:
        found = []
        for directory, _dirs, files in os.walk(root):
            found += [(Path(directory) / name).relative_to(root).as_posix() for name in files]
        return sorted(found)

    return Backend("filesystem", driver, entries)


def _memory(tmp_path: Path) -> Backend:
    driver = create_driver("memory")
    assert isinstance(driver, CheckedDriver)
    inner = driver.inner
    assert isinstance(inner, MemoryDriver)

    def entries() -> list[str]:
        return sorted(inner._objects) + sorted(f"_uploads/{sid}/data" for sid in inner._sessions)

    return Backend("memory", driver, entries)


BACKENDS: dict[str, Callable[[Path], Backend]] = {
    "filesystem": _filesystem,
    "memory": _memory,
}
