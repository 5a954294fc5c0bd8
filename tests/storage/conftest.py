"""Fixtures for the storage driver contract suite.

``backend`` is parametrized over every entry of ``storage.backends.BACKENDS``; ``driver`` is the
driver as the application gets it: built by ``create_driver``, so wrapped by CheckedDriver.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from moorage.storage import StorageDriver
from storage.backends import BACKENDS, Backend


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    yield BACKENDS[request.param](tmp_path)


@pytest.fixture
def driver(backend: Backend) -> StorageDriver:
    return backend.driver
