"""``tags/list``, ``_catalog`` and ``referrers``: JSON listings with ``Link`` paging."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from moorage.domain.digest import Digest
from moorage.domain.errors import RepositoryNotFoundError
from moorage.domain.media_types import OCI_IMAGE_INDEX
from moorage.http.access import caller_of
from moorage.http.context import get_context
from moorage.http.inputs import parse_count
from moorage.http.v2.common import call, on_repository, repository, services
from moorage.services.listing import Page


def _json(
    payload: Any, headers: dict[str, str] | None = None, media_type: str = "application/json"
) -> Response:
    return Response(json.dumps(payload).encode(), media_type=media_type, headers=headers)


def _link(path: str, n: int | None, page: Page) -> dict[str, str]:
    if page.next_last is None:
        return {}
    query = {"n": str(n if n is not None else len(page.items)), "last": page.next_last}
    return {"Link": f'<{path}?{urlencode(query)}>; rel="next"'}


async def list_tags(request: Request) -> Response:
    registry = services(request)
    n = parse_count(request.query_params.get("n"), limit=registry.listing.page_cap)
    page = await on_repository(request, registry.listing.tags, n, request.query_params.get("last"))
    body, headers = tags_answer(request.path_params["name"], n, page)
    return Response(body, headers=headers)


def tags_answer(name: str, n: int | None, page: Page) -> tuple[bytes, dict[str, str]]:
    """A tags/list page's JSON body and its headers: type, length and ``Link`` (when more
    remain)."""
    body = json.dumps({"name": name, "tags": page.items}).encode()
    headers = {"Content-Type": "application/json", "Content-Length": str(len(body))}
    return body, headers | _link(f"/v2/{name}/tags/list", n, page)


async def catalog(request: Request) -> Response:
    registry = services(request)
    n = parse_count(request.query_params.get("n"), limit=registry.listing.page_cap)
    caller, authorizer = caller_of(request), get_context(request).authorizer
    readable = None
    if not caller.open and authorizer is not None:

        def readable(after: str | None, limit: int) -> list[str]:
            return authorizer.readable_repositories(caller.principal, after, limit)

    page = await call(registry.listing.catalog, n, request.query_params.get("last"), readable)
    return _json({"repositories": page.items}, _link("/v2/_catalog", n, page))


async def referrers(request: Request) -> Response:
    """Always 200 for a well-formed digest, even for a repository with no content yet: a
    404 tells clients the API does not exist."""
    registry = services(request)
    digest = request.path_params["digest"]
    Digest.parse(digest)
    artifact_type = request.query_params.get("artifactType")
    try:
        repo = await repository(request)
    except RepositoryNotFoundError:
        found: list[dict[str, Any]] = []
    else:
        found = await call(registry.listing.referrers, repo, digest, artifact_type)
    headers = {"OCI-Filters-Applied": "artifactType"} if artifact_type else None
    index = {"schemaVersion": 2, "mediaType": OCI_IMAGE_INDEX, "manifests": found}
    return _json(index, headers, media_type=OCI_IMAGE_INDEX)
