"""The API version check and the error format every /v2 client relies on."""

from __future__ import annotations

from starlette.testclient import TestClient

API_HEADER = "Docker-Distribution-API-Version"


def test_v2_ping_answers_empty_json_with_api_version(client: TestClient) -> None:
    response = client.get("/v2/")
    assert response.status_code == 200
    assert response.json() == {}
    assert response.headers[API_HEADER] == "registry/2.0"
    assert response.headers["content-type"].startswith("application/json")


def test_v2_ping_without_trailing_slash_is_not_redirected(client: TestClient) -> None:
    response = client.get("/v2", follow_redirects=False)
    assert response.status_code == 200
    assert response.headers[API_HEADER] == "registry/2.0"


def test_head_v2_ping(client: TestClient) -> None:
    response = client.head("/v2/")
    assert response.status_code == 200
    assert response.headers[API_HEADER] == "registry/2.0"


def test_unknown_v2_path_gets_oci_not_found(client: TestClient) -> None:
    response = client.get("/v2/acme/app/nothing-here")
    assert response.status_code == 404
    assert response.headers[API_HEADER] == "registry/2.0"
    assert response.headers["content-type"].startswith("application/json")
    errors = response.json()["errors"]
    assert [error["code"] for error in errors] == ["NOT_FOUND"]
    assert errors[0]["message"]


def test_wrong_method_on_known_path_is_405_unsupported(client: TestClient) -> None:
    response = client.post("/v2/")
    assert response.status_code == 405
    assert response.headers[API_HEADER] == "registry/2.0"
    assert response.json()["errors"][0]["code"] == "UNSUPPORTED"


def test_405_lists_every_method_the_path_takes(client: TestClient) -> None:
    """A manifest path takes GET, HEAD, PUT and DELETE, each from its own route."""
    response = client.patch("/v2/acme/app/manifests/latest")
    assert response.status_code == 405
    assert response.headers["allow"] == "DELETE, GET, HEAD, PUT"
    assert response.json()["errors"][0]["code"] == "UNSUPPORTED"


def test_non_v2_paths_do_not_claim_the_registry_api(client: TestClient) -> None:
    response = client.get("/healthz")
    assert API_HEADER not in response.headers
