"""IndexedRouter picks the same route as Starlette's one-by-one scan, for every request."""

from __future__ import annotations

import itertools

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route, Router
from starlette.testclient import TestClient

from moorage.http.routes import ROUTES
from moorage.http.routing import IndexedRouter

DIGEST = "sha256:" + "ab" * 32
PATHS = (
    "/v2/",
    "/v2",
    "/healthz",
    "/metrics",
    "/v2/_catalog",
    "/v2/library/app/tags/list",
    "/v2/a/b/c/tags/list",
    "/v2/org/app/manifests/latest",
    f"/v2/org/app/manifests/{DIGEST}",
    "/v2/org/manifests/manifests/v1",  # a repository named like a path segment
    "/v2/org/app/blobs/uploads/",
    "/v2/org/app/blobs/uploads",
    "/v2/org/app/blobs/uploads/0f1e2d",
    f"/v2/org/app/blobs/{DIGEST}",
    "/v2/org/blobs/blobs/uploads/x",
    f"/v2/org/app/referrers/{DIGEST}",
    "/v2/org/app/tags/list/extra",
    "/v2/org/app/manifests/",
    "/nothing/here",
    "/v2/org/app/",
)
METHODS = ("GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS")


def _named(name: str) -> object:
    async def endpoint(request: Request) -> Response:
        return PlainTextResponse(f"{name} {dict(request.path_params)}")

    return endpoint


def _routes() -> list[Route]:
    return [
        Route(spec.path, _named(spec.name), methods=[spec.method], name=spec.name)  # type: ignore[arg-type]
        for spec in ROUTES
    ]


@pytest.fixture(scope="module")
def clients() -> tuple[TestClient, TestClient]:
    linear = Starlette()
    linear.router = Router(_routes())
    indexed = Starlette()
    indexed.router = IndexedRouter(_routes(), lifespan=None)
    return TestClient(linear, follow_redirects=False), TestClient(indexed, follow_redirects=False)


def _methods_served(client: TestClient, path: str) -> set[str]:
    return {
        method
        for method in METHODS
        if client.request(method, path).status_code not in (404, 405, 307)
    }


@pytest.mark.parametrize(("method", "path"), list(itertools.product(METHODS, PATHS)))
def test_same_answer_as_the_linear_scan(
    clients: tuple[TestClient, TestClient], method: str, path: str
) -> None:
    """Same status, body and redirect; a 405 lists every method the path takes (Starlette's
    scan names only the first matching route's methods)."""
    linear, indexed = clients
    expected = linear.request(method, path)
    got = indexed.request(method, path)
    assert (got.status_code, got.text, got.headers.get("location")) == (
        expected.status_code,
        expected.text,
        expected.headers.get("location"),
    )
    if got.status_code == 405:
        assert set(got.headers["allow"].split(", ")) == _methods_served(linear, path)


def test_known_routes_are_found_and_others_fall_through(
    clients: tuple[TestClient, TestClient],
) -> None:
    _, indexed = clients
    assert indexed.head(f"/v2/org/app/blobs/{DIGEST}").status_code == 200
    assert indexed.get("/v2/a/b/c/tags/list").text == "v2.tags {'name': 'a/b/c'}"
    wrong_method = indexed.request("PATCH", "/v2/org/app/manifests/latest")
    assert wrong_method.status_code == 405
    assert wrong_method.headers["allow"] == "DELETE, GET, HEAD, PUT"
    assert indexed.get("/nothing/here").status_code == 404
