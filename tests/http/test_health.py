"""/healthz reports each component and names the one that fails."""

from __future__ import annotations

import shutil

import pytest
from starlette.testclient import TestClient

from moorage.app import Application, build
from moorage.config import Settings, load_settings
from support.pgserver import free_port


def test_healthy_when_database_and_storage_answer(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["components"] == {"database": {"status": "ok"}, "storage": {"status": "ok"}}


def test_503_names_an_unreachable_postgresql(settings: Settings) -> None:
    url = f"postgresql://moorage:s3cret@127.0.0.1:{free_port()}/moorage"
    unreachable = load_settings(data_dir=settings.data_dir, database_url=url)
    application = build(unreachable)
    try:
        with TestClient(application.asgi) as client:
            response = client.get("/healthz")
    finally:
        application.close()
    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["database"]
    assert body["components"]["storage"] == {"status": "ok"}
    assert body["components"]["database"]["status"] == "error"
    assert "s3cret" not in response.text


def test_503_names_an_unwritable_storage_root(application: Application, client: TestClient) -> None:
    # The storage volume disappears under the running server; a file now blocks the path.
    shutil.rmtree(application.settings.storage_root)
    application.settings.storage_root.write_text("not a directory")
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["failing"] == ["storage"]
    assert response.json()["components"]["database"] == {"status": "ok"}


@pytest.mark.postgres
def test_healthy_on_postgresql(settings: Settings, fresh_postgres_url: str) -> None:
    on_postgres = load_settings(
        data_dir=settings.data_dir, database_url=fresh_postgres_url, auto_migrate=True
    )
    application = build(on_postgres)
    try:
        with TestClient(application.asgi) as client:
            response = client.get("/healthz")
    finally:
        application.close()
    assert response.status_code == 200, response.text
