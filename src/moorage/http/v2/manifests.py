"""``GET``/``HEAD``/``PUT``/``DELETE /v2/<name>/manifests/<reference>``."""

from __future__ import annotations

from collections.abc import Iterable

from starlette.requests import Request
from starlette.responses import Response

from moorage.domain.errors import ManifestTooLargeError
from moorage.domain.manifests.parse import check_json_nesting
from moorage.domain.records import RepositoryReference
from moorage.http.context import get_context
from moorage.http.v2.common import BodyStream, empty, on_repository, services
from moorage.services.manifests import ManifestBody, PushResult


def accepted_types(request: Request) -> set[str]:
    """Every ``Accept`` line, comma-split, parameters and weights dropped."""
    return accepted_in(request.headers.getlist("accept"))


def accepted_in(lines: Iterable[str]) -> set[str]:
    """``accepted_types`` of the given ``Accept`` lines."""
    types: set[str] = set()
    for line in lines:
        for item in line.split(","):
            media_type = item.split(";", 1)[0].strip().lower()
            if media_type:
                types.add(media_type)
    return types


async def get_manifest(request: Request) -> Response:
    manifests = services(request).manifests
    reference, accepted = request.path_params["reference"], accepted_types(request)
    # Reads alone answer the common GET (on the event loop with SQLite); the rest (expired
    # tags, backfills, schema 1 renderings) may write, so they go to a thread.
    body = await on_repository(request, manifests.get_stored, reference, accepted)
    if body is None:
        body = await on_repository(request, manifests.get, reference, accepted)
    headers = manifest_headers(body)
    etag = headers["ETag"]
    if etag in [tag.strip() for tag in request.headers.get("if-none-match", "").split(",")]:
        return Response(
            b"",
            status_code=304,
            headers={k: v for k, v in headers.items() if k != "Content-Length"},
        )
    if request.method == "HEAD":
        return Response(b"", headers=headers)
    return Response(body.content, headers=headers)


def manifest_headers(body: ManifestBody) -> dict[str, str]:
    """A manifest GET's (and HEAD's) headers, ``Content-Length`` included."""
    return {
        "Content-Type": body.media_type,
        "Docker-Content-Digest": body.digest,
        "ETag": f'"{body.digest}"',
        "Content-Length": str(len(body.content)),
    }


async def _read_limited(request: Request, limit: int) -> bytes | None:
    """The body, or None once it grows past ``limit`` (the rest is not read). A body that
    cannot be read (malformed chunked encoding, cut short, silent past the idle timeout)
    raises ``RequestBodyError``: 400 (or 408) and the connection closed, nothing stored."""
    stream = BodyStream(request, get_context(request).body_idle_timeout_s)
    parts: list[bytes] = []
    size = 0
    while (chunk := await stream.piece()) is not None:
        size += len(chunk)
        if size > limit:
            return None
        parts.append(chunk)
    return b"".join(parts)


async def put_manifest(request: Request) -> Response:
    manifests = services(request).manifests
    limit = manifests.settings.size_limit
    # Read on the event loop; checked in the worker thread after the repository, so that
    # the errors come in the same order as ever, in one thread hop.
    body = await _read_limited(request, limit)
    reference = request.path_params["reference"]
    content_type = request.headers.get("content-type")
    tags = request.query_params.getlist("tag")

    def push(repo: RepositoryReference) -> PushResult:
        if body is None:
            raise ManifestTooLargeError(f"manifest is larger than {limit} bytes")
        check_json_nesting(body)  # before anything sniffs it with a recursive parser
        return manifests.push(repo, reference, body, content_type, tags)

    result = await on_repository(request, push)
    headers = {
        "Location": f"/v2/{request.path_params['name']}/manifests/{result.digest}",
        "Docker-Content-Digest": result.digest,
    }
    if result.subject_digest is not None:
        headers["OCI-Subject"] = result.subject_digest
    if result.tags:
        headers["OCI-Tag"] = ", ".join(result.tags)
    return empty(201, headers)


async def delete_manifest(request: Request) -> Response:
    await on_repository(
        request, services(request).manifests.delete, request.path_params["reference"]
    )
    return empty(202)
