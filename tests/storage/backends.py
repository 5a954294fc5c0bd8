"""Storage backends the driver contract suite runs against, plus shared test helpers.

Each entry of ``BACKENDS`` builds a fresh backend from a :class:`BackendContext`; the whole
contract runs against every entry. The S3 entries run the S3 driver against real servers on
127.0.0.1 (SeaweedFS and moto's server mode, see ``support/s3servers.py``), each test under its
own key prefix of one shared bucket. ``Backend.raw_entries()`` lists everything the backend
physically holds (objects, sessions, temp files, unfinished multipart uploads), so tests can
check that failures leave nothing. ``Backend.cleanup`` runs when the test ends.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from moorage.storage import StorageDriver, create_driver
from moorage.storage.base import CheckedDriver
from moorage.storage.memory import MemoryDriver
from support.s3servers import S3Server, unique_prefix


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
    cleanup: Callable[[], None] = lambda: None


@dataclass
class BackendContext:
    tmp_path: Path
    request: pytest.FixtureRequest


def _filesystem(context: BackendContext) -> Backend:
    root = context.tmp_path / "root"
    driver = create_driver("filesystem", root=root)

    def entries() -> list[str]:
        found = []
        for directory, _dirs, files in os.walk(root):
            found += [(Path(directory) / name).relative_to(root).as_posix() for name in files]
        return sorted(found)

    return Backend("filesystem", driver, entries)


def _memory(context: BackendContext) -> Backend:
    driver = create_driver("memory")
    assert isinstance(driver, CheckedDriver)
    inner = driver.inner
    assert isinstance(inner, MemoryDriver)

    def entries() -> list[str]:
        return sorted(inner._objects) + sorted(f"_uploads/{sid}" for sid in inner._sessions)

    return Backend("memory", driver, entries)


def s3_backend(name: str, server: S3Server, **options: Any) -> Backend:
    """An S3 driver on ``server`` under a fresh prefix; ``options`` override driver options."""
    prefix = unique_prefix()
    driver = create_driver("s3", **{**server.driver_options(prefix), **options})
    return Backend(name, driver, lambda: server.raw_entries(prefix), lambda: server.clear(prefix))


def _s3(fixture: str) -> Callable[[BackendContext], Backend]:
    def build(context: BackendContext) -> Backend:
        server = context.request.getfixturevalue(fixture)  # started once, on first use
        assert isinstance(server, S3Server)
        return s3_backend(f"s3-{server.name}", server)

    return build


BACKENDS: dict[str, Callable[[BackendContext], Backend]] = {
    "filesystem": _filesystem,
    "memory": _memory,
    "s3-moto": _s3("moto_s3"),
    "s3-seaweedfs": _s3("seaweedfs_s3"),
}
