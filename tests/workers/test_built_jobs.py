"""The background jobs ``app.build`` wires (``Application.replication``, ``.upload_cleanup``),
run as the CLI and the server run them: real files in two filesystem locations, on SQLite
and PostgreSQL."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from moorage.app import Application, build
from moorage.config import load_settings


@pytest.fixture(params=["sqlite", "postgres"])
def application(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Application]:
    database: dict[str, object] = {}
    if request.param == "postgres":
        database = {"database_url": request.getfixturevalue("fresh_postgres_url")}
        database["auto_migrate"] = True
    storage = {
        "default_location": "near",
        "locations": {
            "near": {"driver": "filesystem", "root": str(tmp_path / "near")},
            "far": {"driver": "filesystem", "root": str(tmp_path / "far")},
        },
    }
    built = build(load_settings(data_dir=tmp_path / "data", storage=storage, **database))
    try:
        yield built
    finally:
        built.close()


def test_the_replication_job_copies_what_a_push_stored(
    application: Application, tmp_path: Path
) -> None:
    data = b"copy me to far" * 500
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with TestClient(application.asgi) as client:
        pushed = client.post(f"/v2/acme/app/blobs/uploads/?digest={digest}", content=data)
        assert pushed.status_code == 201, pushed.text
    job = application.replication
    assert job.name == "replicate"
    report = job.run_once()
    assert (report.copied, report.failed) == (1, 0)
    copy = tmp_path / "far" / "blobs" / "sha256" / digest[7:9] / digest[7:]
    assert copy.read_bytes() == data
    assert job.run_once().copied == 0


def test_the_cleanup_job_keeps_young_sessions_and_removes_old_ones(
    application: Application, tmp_path: Path
) -> None:
    with TestClient(application.asgi) as client:
        location = client.post("/v2/acme/app/blobs/uploads/").headers["Location"]
        assert client.patch(location, content=b"half an upload").status_code == 202
    sessions = tmp_path / "near" / "_uploads"
    assert len(list(sessions.iterdir())) == 1
    job = application.upload_cleanup
    assert job.name == "clean-uploads"
    assert job.run_once().sessions == 0  # two days by default
    report = job.run_once(timedelta(seconds=-1))
    assert (report.sessions, report.orphans) == (1, 0)
    assert list(sessions.iterdir()) == []
    with TestClient(application.asgi) as client:
        assert client.get(location).status_code == 404
