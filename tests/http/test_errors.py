"""Domain errors and crashes reach clients in the OCI error format, from one table."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.testclient import TestClient

from moorage.domain.errors import InvalidDigestError, InvalidNameError
from moorage.http.app import create_http_app
from moorage.http.context import HttpContext
from moorage.http.routes import ROUTES, Access, RouteSpec
from moorage.observability import Metrics


async def bad_digest(_request: Request) -> Response:
    raise InvalidDigestError("sha256:nothex is not a digest")


async def bad_name(_request: Request) -> Response:
    raise InvalidNameError("repository name 'UPPER' must be lowercase")


async def crash(_request: Request) -> Response:
    raise RuntimeError("database password=hunter2 exploded")


async def upload(_request: Request) -> Response:
    return Response(status_code=202)


EXTRA = (
    RouteSpec("GET", "/v2/test/digest", bad_digest, Access.PULL, "t.digest"),
    RouteSpec("GET", "/v2/test/name", bad_name, Access.PULL, "t.name"),
    RouteSpec("GET", "/v2/test/crash", crash, Access.PULL, "t.crash"),
    RouteSpec("POST", "/v2/test/upload", upload, Access.PUSH, "t.upload"),
)


def make_client(*, read_only: bool = False) -> TestClient:
    context = HttpContext(metrics=Metrics.create(), read_only=read_only)
    return TestClient(
        create_http_app(context, routes=(*ROUTES, *EXTRA)), raise_server_exceptions=False
    )


@pytest.fixture
def client() -> Iterator[TestClient]:
    with make_client() as test_client:
        yield test_client


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [("/v2/test/digest", 400, "DIGEST_INVALID"), ("/v2/test/name", 400, "NAME_INVALID")],
)
def test_domain_errors_map_to_oci_codes(
    client: TestClient, path: str, status: int, code: str
) -> None:
    response = client.get(path)
    assert response.status_code == status
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    (error,) = response.json()["errors"]
    assert error["code"] == code
    assert error["message"]


def test_unexpected_crash_is_a_500_without_internals(client: TestClient) -> None:
    response = client.get("/v2/test/crash")
    assert response.status_code == 500
    assert response.json() == {"errors": [{"code": "UNKNOWN", "message": "internal server error"}]}
    assert "X-Request-ID" in response.headers
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"


def test_read_only_mode_removes_write_routes() -> None:
    with make_client(read_only=False) as writable:
        assert writable.post("/v2/test/upload").status_code == 202
    with make_client(read_only=True) as read_only:
        assert read_only.post("/v2/test/upload").status_code == 404
        assert read_only.get("/v2/").status_code == 200


# -- issue 11: concise messages in our own words, echoed input cut short ----------------


async def long_message(_request: Request) -> Response:
    raise InvalidNameError("invalid repository name: " + "x" * 10_000)


async def surrogate(_request: Request) -> Response:
    raise InvalidDigestError("malformed digest: '\ud800'")


SHORT = (
    RouteSpec("GET", "/v2/test/long", long_message, Access.PULL, "t.long"),
    RouteSpec("GET", "/v2/test/surrogate", surrogate, Access.PULL, "t.surrogate"),
)


def test_messages_are_capped_centrally() -> None:
    context = HttpContext(metrics=Metrics.create(), read_only=False)
    app = create_http_app(context, routes=(*ROUTES, *SHORT))
    with TestClient(app, raise_server_exceptions=False) as test_client:
        long = test_client.get("/v2/test/long")
        assert long.status_code == 400 and len(long.content) < 400
        (error,) = long.json()["errors"]
        assert error["code"] == "NAME_INVALID" and len(error["message"]) <= 200
        # A lone surrogate cannot be UTF-8 encoded; the error must still be sent.
        odd = test_client.get("/v2/test/surrogate")
        assert odd.status_code == 400 and odd.json()["errors"][0]["code"] == "DIGEST_INVALID"


@pytest.fixture
def registry() -> Iterator[TestClient]:
    import tempfile
    from pathlib import Path

    from moorage.app import build
    from moorage.config import load_settings

    with tempfile.TemporaryDirectory() as tmp:
        app = build(load_settings(data_dir=Path(tmp) / "data"))
        try:
            with TestClient(app.asgi) as test_client:
                yield test_client
        finally:
            app.close()


@pytest.mark.parametrize(
    "path",
    [
        "/v2/acme/" + "a" * 10_000 + "/tags/list",
        "/v2/acme/app/blobs/sha256:" + "a" * 10_000,
        "/v2/acme/app/blobs/sha256:" + "A" * 64,
        "/v2/acme/app/blobs/sha256:../../x",
        "/v2/acme/app/manifests/sha256:" + "z" * 10_000,
        "/v2/acme/app/referrers/" + "x" * 10_000,
        "/v2/acme/app/tags/list?n=" + "9" * 10_000,
    ],
)
def test_registry_errors_echo_little(registry: TestClient, path: str) -> None:
    response = registry.get(path)
    assert 400 <= response.status_code < 500, response.text[:300]
    assert len(response.content) <= 500, response.text[:600]
    (error,) = response.json()["errors"]
    assert len(error["message"]) <= 200
