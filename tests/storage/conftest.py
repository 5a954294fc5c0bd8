"""Fixtures for the storage driver contract suite.

``backend`` is parametrized over every entry of ``storage.backends.BACKENDS``; ``driver`` is the
driver as the application gets it: built by ``create_driver``, so wrapped by CheckedDriver. The S3
backends' servers are session fixtures, started when the first S3 test runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from moorage.storage import StorageDriver
from storage.backends import BACKENDS, Backend, BackendContext
from support.s3servers import moto_s3, seaweedfs_s3

__all__ = ["moto_s3", "seaweedfs_s3"]  # session fixtures: the S3 servers, started on first use


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    built = BACKENDS[request.param](BackendContext(tmp_path, request))
    try:
        yield built
    finally:
        built.cleanup()


@pytest.fixture
def driver(backend: Backend) -> StorageDriver:
    return backend.driver
