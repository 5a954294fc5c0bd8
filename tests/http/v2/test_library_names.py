"""One-component names (``docker push host:5000/alpine``) live in the ``library`` namespace,
as on Docker Hub and in Quay; with ``library_support`` off they are refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from tests.http.v2.helpers import (
    SCHEMA2,
    base_v1_entry,
    error_codes,
    image,
    put_manifest,
    sha256,
    upload,
)

from moorage.app import build
from moorage.config import load_settings
from moorage.domain.errors import InvalidNameError
from moorage.domain.manifests import Schema1Signer, build_schema1_manifest
from moorage.domain.names import split_full_name

SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"


def test_split_full_name_maps_one_component_names_to_library() -> None:
    assert split_full_name("alpine", library=True) == ("library", "alpine")
    assert split_full_name("acme/app", library=True) == ("acme", "app")
    with pytest.raises(InvalidNameError):
        split_full_name("alpine")
    for bad in ("Alpine", "-alpine", "", "a" * 256):
        with pytest.raises(InvalidNameError):
            split_full_name(bad, library=True)


def test_push_as_alpine_pull_as_library_alpine(client: TestClient) -> None:
    body, media_type = image(client, "alpine", [b"layer one", b"layer two"])
    pushed = put_manifest(client, "alpine", "3.20", body, media_type)
    assert pushed.status_code == 201, pushed.text
    assert pushed.headers["location"].startswith("/v2/alpine/manifests/sha256:")
    for name in ("alpine", "library/alpine"):
        response = client.get(f"/v2/{name}/manifests/3.20", headers={"Accept": SCHEMA2})
        assert response.status_code == 200 and response.content == body
        assert client.head(f"/v2/{name}/blobs/{sha256(b'layer one')}").status_code == 200
    listing = client.get("/v2/alpine/tags/list").json()
    assert listing == {"name": "alpine", "tags": ["3.20"]}
    assert client.get("/v2/library/alpine/tags/list").json()["tags"] == ["3.20"]
    assert "library/alpine" in client.get("/v2/_catalog").json()["repositories"]


def test_schema1_manifest_may_name_either_form(client: TestClient) -> None:
    layer = b"schema1 library layer"
    upload(client, "alpine", layer)
    entry = base_v1_entry(layer, "b" * 64)
    signer = Schema1Signer.generate()
    for url_name, manifest_name in (("alpine", "library/alpine"), ("library/alpine", "alpine")):
        body = build_schema1_manifest(manifest_name, "v1", "amd64", [entry], signer)
        response = put_manifest(client, url_name, "v1", body, SCHEMA1_SIGNED)
        assert response.status_code == 201, (url_name, manifest_name, response.text)
    other = build_schema1_manifest("busybox", "v1", "amd64", [entry], signer)
    response = put_manifest(client, "alpine", "v1", other, SCHEMA1_SIGNED)
    assert response.status_code == 400 and error_codes(response) == ["NAME_INVALID"]


@pytest.fixture
def strict_client(tmp_path: Path) -> Iterator[TestClient]:
    application = build(load_settings(data_dir=tmp_path / "data", library_support=False))
    try:
        with TestClient(application.asgi) as test_client:
            yield test_client
    finally:
        application.close()


def test_without_library_support_one_component_names_are_invalid(
    strict_client: TestClient,
) -> None:
    response = strict_client.post("/v2/alpine/blobs/uploads/")
    assert response.status_code == 400 and error_codes(response) == ["NAME_INVALID"]
    response = strict_client.get("/v2/alpine/tags/list")
    assert response.status_code == 400 and error_codes(response) == ["NAME_INVALID"]
