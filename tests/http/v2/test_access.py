"""Refusals that do not depend on who asks: read-only mode and repositories, disabled
namespaces, application repositories."""

from __future__ import annotations

from pathlib import Path

from starlette.testclient import TestClient
from tests.http.v2.helpers import error_codes, image, put_manifest, upload

from moorage.app import Application, build
from moorage.config import load_settings
from moorage.domain.records import RepositoryKind, RepositoryState

NAME = "acme/app"


def test_read_only_registry_refuses_writes(tmp_path: Path) -> None:
    writable = build(load_settings(data_dir=tmp_path / "d"))
    with TestClient(writable.asgi) as client:
        body, media_type = image(client, NAME, [b"x"])
        put_manifest(client, NAME, "latest", body, media_type)
    writable.close()
    read_only = build(load_settings(data_dir=tmp_path / "d", read_only=True))
    with TestClient(read_only.asgi) as client:
        assert client.get(f"/v2/{NAME}/manifests/latest").status_code == 200
        response = client.post(f"/v2/{NAME}/blobs/uploads/")
        assert response.status_code == 405 and error_codes(response) == ["UNSUPPORTED"]
        assert client.delete(f"/v2/{NAME}/manifests/latest").status_code == 405
        assert put_manifest(client, NAME, "new", body, media_type).status_code == 405
    read_only.close()


def test_disabled_namespace_refuses_everything(
    client: TestClient, application: Application
) -> None:
    body, media_type = image(client, NAME, [b"x"])
    put_manifest(client, NAME, "latest", body, media_type)
    application.model.set_namespace_enabled("acme", False)
    for response in (
        client.get(f"/v2/{NAME}/manifests/latest"),
        client.get(f"/v2/{NAME}/tags/list"),
        client.post(f"/v2/{NAME}/blobs/uploads/"),
        client.post("/v2/acme/newrepo/blobs/uploads/"),
    ):
        assert response.status_code == 403 and error_codes(response) == ["DENIED"]
    assert client.get("/v2/_catalog").json()["repositories"] == []


def test_read_only_repository_refuses_pushes(client: TestClient, application: Application) -> None:
    upload(client, NAME, b"x")
    repo = application.model.lookup_repository("acme", "app")
    assert repo is not None
    application.model.set_repository_state(repo, RepositoryState.READ_ONLY)
    response = client.post(f"/v2/{NAME}/blobs/uploads/")
    assert response.status_code == 403 and error_codes(response) == ["DENIED"]
    assert client.get(f"/v2/{NAME}/tags/list").status_code == 200


def test_application_repositories_are_not_container_repositories(
    client: TestClient, application: Application
) -> None:
    application.model.create_namespace("charts")
    application.model.create_repository("charts", "helm", kind=RepositoryKind.APPLICATION)
    for response in (
        client.get("/v2/charts/helm/tags/list"),
        client.post("/v2/charts/helm/blobs/uploads/"),
    ):
        assert response.status_code == 405 and error_codes(response) == ["UNSUPPORTED"]
