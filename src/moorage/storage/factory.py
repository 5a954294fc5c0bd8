"""Driver selection from an explicit name → class table; every driver comes back wrapped once."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from moorage.storage.base import CallHook, CheckedDriver
from moorage.storage.driver import StorageDriver
from moorage.storage.filesystem import FilesystemDriver
from moorage.storage.memory import MemoryDriver


def _s3_driver(**options: Any) -> StorageDriver:
    # Imported on use: boto3 costs a worker ~25 MB that filesystem deployments never need.
    from moorage.storage.s3 import S3Driver

    return S3Driver(**options)


DRIVERS: Mapping[str, Callable[..., StorageDriver]] = {
    "filesystem": FilesystemDriver,
    "memory": MemoryDriver,
    "s3": _s3_driver,
}


def create_driver(kind: str, *, on_call: CallHook | None = None, **options: Any) -> StorageDriver:
    """Build the ``kind`` driver from ``options`` (e.g. ``root=`` for filesystem), wrapped by
    :class:`CheckedDriver` with the ``on_call(operation, seconds)`` timing hook."""
    try:
        factory = DRIVERS[kind]
    except KeyError:
        valid = ", ".join(sorted(DRIVERS))
        raise ValueError(f"unknown storage driver {kind!r}; valid drivers: {valid}") from None
    try:
        driver = factory(**options)
    except TypeError as exc:
        raise ValueError(f"storage driver {kind!r}: bad options {sorted(options)}: {exc}") from exc
    return CheckedDriver(driver, on_call, name=kind)
