"""The wrapper every driver gets (validation, error tagging, timing) and the driver factory."""

from __future__ import annotations

import errno
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from moorage.storage import (
    ObjectInfo,
    ObjectNotFoundError,
    StorageDriver,
    StorageError,
    create_driver,
)
from moorage.storage.base import CheckedDriver
from moorage.storage.filesystem import FilesystemDriver
from moorage.storage.memory import MemoryDriver
from storage.backends import read_all


class FlakyDriver(MemoryDriver):
    """A backend whose own errors are not the typed ones."""

    not_found_errors = (KeyError,)

    def stat(self, key: str) -> ObjectInfo:
        raise KeyError(key)

    def put(self, key: str, chunks: Iterable[bytes]) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    def read(
        self, key: str, offset: int = 0, length: int | None = None, chunk_size: int = 1 << 20
    ) -> Iterator[bytes]:
        yield b"first"
        raise KeyError(key)


def test_backend_not_found_errors_become_the_typed_one() -> None:
    driver = CheckedDriver(FlakyDriver())
    with pytest.raises(ObjectNotFoundError) as info:
        driver.stat("a/b")
    assert info.value.key == "a/b"
    assert isinstance(info.value.__cause__, KeyError)


def test_not_found_while_streaming_becomes_the_typed_one() -> None:
    chunks = CheckedDriver(FlakyDriver()).read("a/b")
    assert next(chunks) == b"first"
    with pytest.raises(ObjectNotFoundError):
        next(chunks)


def test_backend_io_errors_are_tagged() -> None:
    driver = CheckedDriver(FlakyDriver(), name="flaky")
    with pytest.raises(StorageError, match=r"flaky put a/b: .*No space left") as info:
        driver.put("a/b", [b"x"])
    assert isinstance(info.value.__cause__, OSError)


def test_errors_of_the_callers_stream_pass_through_untouched(tmp_path: Path) -> None:
    """A client disconnect (here an OSError from the request body) is not a storage failure."""
    disconnect = ConnectionResetError("client reset")

    def body() -> Iterator[bytes]:
        yield b"some"
        raise disconnect

    driver = create_driver("filesystem", root=tmp_path)
    with pytest.raises(ConnectionResetError) as info:
        driver.put("k", body())
    assert info.value is disconnect
    session_id, metadata = driver.initiate_upload()
    with pytest.raises(ConnectionResetError) as info:
        driver.append_upload(session_id, metadata, 0, body())
    assert info.value is disconnect


def test_on_call_hook_times_every_operation() -> None:
    calls: list[tuple[str, float]] = []
    driver = create_driver("memory", on_call=lambda op, seconds: calls.append((op, seconds)))
    driver.put("k", [b"v"])
    read_all(driver.read("k"))
    with pytest.raises(ObjectNotFoundError):
        driver.stat("missing")
    session_id, metadata = driver.initiate_upload()
    driver.cancel_upload(session_id, metadata)
    assert [op for op, _ in calls] == [
        "put",
        "read",
        "stat",
        "initiate_upload",
        "cancel_upload",
    ]
    assert all(seconds >= 0 for _, seconds in calls)


def test_a_failing_hook_never_fails_the_call() -> None:
    def hook(operation: str, seconds: float) -> None:
        raise RuntimeError("metrics backend down")

    driver = create_driver("memory", on_call=hook)
    driver.put("k", [b"v"])
    assert driver.exists("k")


def test_wrapping_is_applied_once() -> None:
    inner = MemoryDriver()
    once = CheckedDriver(inner)
    twice = CheckedDriver(once)
    assert twice.inner is inner


def test_factory_builds_wrapped_drivers(tmp_path: Path) -> None:
    fs = create_driver("filesystem", root=tmp_path / "r")
    memory = create_driver("memory")
    assert isinstance(fs, CheckedDriver)
    assert isinstance(fs.inner, FilesystemDriver)
    assert isinstance(memory, CheckedDriver)
    assert isinstance(memory.inner, MemoryDriver)
    for driver in (fs, memory):
        assert isinstance(driver, StorageDriver)


def test_factory_accepts_a_string_root(tmp_path: Path) -> None:
    driver = create_driver("filesystem", root=str(tmp_path / "r"))
    driver.put("k", [b"v"])
    assert (tmp_path / "r" / "k").read_bytes() == b"v"


def test_unknown_kind_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"'s4'.*filesystem, memory"):
        create_driver("s4")


def test_bad_options_are_a_value_error() -> None:
    with pytest.raises(ValueError, match="memory"):
        create_driver("memory", root="/tmp/x")
    with pytest.raises(ValueError, match="filesystem"):
        create_driver("filesystem")


def test_the_drivers_satisfy_the_protocol(tmp_path: Path) -> None:
    drivers: list[StorageDriver] = [FilesystemDriver(tmp_path), MemoryDriver()]
    assert all(isinstance(d, StorageDriver) for d in drivers)
