"""Fixtures driving the real ASGI app in-process (Starlette TestClient)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from moorage.app import Application, build
from moorage.config import Settings, load_settings
from moorage.observability import configure_logging

LogLines = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(data_dir=tmp_path / "data")


@pytest.fixture
def application(settings: Settings) -> Iterator[Application]:
    app = build(settings)
    try:
        yield app
    finally:
        app.close()


@pytest.fixture
def client(application: Application) -> Iterator[TestClient]:
    with TestClient(application.asgi) as test_client:
        yield test_client


@pytest.fixture
def log_lines() -> Iterator[LogLines]:
    """Capture log output as parsed JSON lines (what a log shipper would see)."""
    buffer = io.StringIO()
    configure_logging("debug", "json", stream=buffer)

    def read() -> list[dict[str, Any]]:
        return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]

    yield read
    configure_logging()
