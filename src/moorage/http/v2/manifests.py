"""``GET``/``HEAD``/``PUT``/``DELETE /v2/<name>/manifests/<reference>``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from moorage.domain.errors import ManifestTooLargeError
from moorage.http.v2.common import call, empty, on_repository, repository, services


def accepted_types(request: Request) -> set[str]:
    """Every ``Accept`` line, comma-split, parameters and weights dropped."""
    types: set[str] = set()
    for line in request.headers.getlist("accept"):
        for item in line.split(","):
            media_type = item.split(";", 1)[0].strip().lower()
            if media_type:
                types.add(media_type)
    return types


async def get_manifest(request: Request) -> Response:
    body = await on_repository(
        request,
        False,
        services(request).manifests.get,
        request.path_params["reference"],
        accepted_types(request),
    )
    etag = f'"{body.digest}"'
    headers = {
        "Content-Type": body.media_type,
        "Docker-Content-Digest": body.digest,
        "ETag": etag,
        "Content-Length": str(len(body.content)),
    }
    if etag in [tag.strip() for tag in request.headers.get("if-none-match", "").split(",")]:
        return Response(
            b"",
            status_code=304,
            headers={k: v for k, v in headers.items() if k != "Content-Length"},
        )
    if request.method == "HEAD":
        return Response(b"", headers=headers)
    return Response(body.content, headers=headers)


async def _read_limited(request: Request, limit: int) -> bytes:
    parts: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ManifestTooLargeError(f"manifest is larger than {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)


async def put_manifest(request: Request) -> Response:
    registry = services(request)
    repo = await repository(request, write=True)
    body = await _read_limited(request, registry.manifests.settings.size_limit)
    result = await call(
        registry.manifests.push,
        repo,
        request.path_params["reference"],
        body,
        request.headers.get("content-type"),
        request.query_params.getlist("tag"),
    )
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
        request, True, services(request).manifests.delete, request.path_params["reference"]
    )
    return empty(202)
