"""Request ids tie log lines to responses; secrets never reach the logs."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from typing import Any

import pytest
from starlette.testclient import TestClient

from moorage.app import Application, build
from moorage.config import Settings, load_settings
from moorage.http.middleware import request_id_from
from moorage.observability import get_logger

LogLines = Callable[[], list[dict[str, Any]]]


def request_lines(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in lines if line.get("event") == "request"]


def test_incoming_request_id_is_echoed_and_logged(client: TestClient, log_lines: LogLines) -> None:
    response = client.get("/v2/", headers={"X-Request-ID": "build-42.attempt-1"})
    assert response.headers["X-Request-ID"] == "build-42.attempt-1"
    (line,) = request_lines(log_lines())
    assert line["request_id"] == "build-42.attempt-1"
    assert line["status"] == 200
    assert line["route"] == "/v2/"
    assert line["level"] == "info"
    assert "timestamp" in line


def test_request_id_is_generated_when_missing_or_unsafe(
    client: TestClient, log_lines: LogLines
) -> None:
    plain = client.get("/v2/")
    unsafe = client.get("/v2/", headers={"X-Request-ID": "evil\tid with spaces"})
    generated = [plain.headers["X-Request-ID"], unsafe.headers["X-Request-ID"]]
    assert all(re.fullmatch(r"[0-9a-f]{32}", rid) for rid in generated)
    assert generated[0] != generated[1]
    assert [line["request_id"] for line in request_lines(log_lines())] == generated


def test_every_line_of_a_request_carries_its_id(
    application: Application, client: TestClient, log_lines: LogLines
) -> None:
    # A failing health check logs from inside the request, before the request line itself.
    shutil.rmtree(application.settings.storage_root)
    application.settings.storage_root.write_text("not a directory")
    client.get("/healthz", headers={"X-Request-ID": "probe-1"})
    server_lines = [line for line in log_lines() if line["logger"].startswith("moorage")]
    assert [line["event"] for line in server_lines] == ["health check failed", "request"]
    assert {line["request_id"] for line in server_lines} == {"probe-1"}


def test_secret_values_are_redacted(log_lines: LogLines) -> None:
    get_logger("test").info(
        "connecting",
        password="hunter2",
        authorization="Bearer abc.def",
        headers={"X-Registry-Token": "tok123"},
        url="postgresql://moorage:hunter2@db.internal:5432/moorage",
    )
    (line,) = log_lines()
    text = json.dumps(line)
    for secret in ("hunter2", "abc.def", "tok123"):
        assert secret not in text
    assert line["url"] == "postgresql://moorage:***@db.internal:5432/moorage"
    assert line["password"] == "***"


def test_startup_log_hides_the_database_password(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    url = "postgresql://moorage:hunter2@127.0.0.1:1/moorage"
    application = build(
        load_settings(data_dir=settings.data_dir, database_url=url, log_format="json")
    )
    application.close()
    err = capsys.readouterr().err
    assert "application built" in err
    assert "moorage:***@127.0.0.1" in err
    assert "hunter2" not in err


def test_forked_workers_generate_different_request_ids() -> None:
    """Ids come from the process's random generator: a forked worker must not repeat the
    ids of its parent (or of its sibling workers)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its first generated id, then out without pytest's cleanup
        os.write(write_end, request_id_from([]).encode())
        os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    child_id = os.read(read_end, 64).decode()
    os.close(read_end)
    assert re.fullmatch(r"[0-9a-f]{32}", child_id)
    assert child_id != request_id_from([])
