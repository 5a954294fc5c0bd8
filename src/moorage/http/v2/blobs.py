"""``GET``/``HEAD``/``DELETE /v2/<name>/blobs/<digest>``: ranged, streamed, never buffered."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse

from moorage.http.errors import ErrorCode, error_response
from moorage.http.inputs import parse_byte_range
from moorage.http.v2.common import PATHSEND, LocalFileResponse, empty, on_repository, services

IMMUTABLE = "max-age=31536000, immutable"


def _headers(digest: str) -> dict[str, str]:
    return {
        "Docker-Content-Digest": digest,
        "Content-Type": "application/octet-stream",
        "Accept-Ranges": "bytes",
        "ETag": f'"{digest}"',
        "Cache-Control": IMMUTABLE,
    }


async def get_blob(request: Request) -> Response:
    digest = request.path_params["digest"]
    blobs = services(request).blobs
    if request.method == "HEAD" and "range" not in request.headers:
        # The record answers a HEAD: no storage round trip (a HEAD never redirects).
        blob = await on_repository(request, blobs.stat, digest)
        headers = {**_headers(digest), "Content-Length": str(blob.compressed_size or 0)}
        return Response(b"", headers=headers)
    content = await on_repository(request, blobs.content, digest)
    headers = _headers(content.digest)
    wanted = parse_byte_range(request.headers.get("range"), content.size)
    if wanted is False:
        return error_response(
            416,
            ErrorCode.RANGE_INVALID,
            f"the range is outside the blob's {content.size} bytes",
            headers={"Content-Range": f"bytes */{content.size}"},
        )
    status, start, length = 200, 0, content.size
    if isinstance(wanted, tuple):
        start, end = wanted
        status, length = 206, end - start + 1
        headers["Content-Range"] = f"bytes {start}-{end}/{content.size}"
    headers["Content-Length"] = str(length)
    if request.method == "HEAD":
        return Response(b"", status_code=status, headers=headers)
    if content.redirect_url is not None and status == 200:
        return RedirectResponse(
            content.redirect_url, status_code=307, headers={"Docker-Content-Digest": content.digest}
        )
    if (
        status == 200
        and content.local_file is not None
        and PATHSEND in request.scope.get("extensions", {})
    ):
        return LocalFileResponse(content.local_file, headers)
    return StreamingResponse(content.chunks(start, length), status_code=status, headers=headers)


async def delete_blob(request: Request) -> Response:
    await on_repository(request, services(request).blobs.unlink, request.path_params["digest"])
    return empty(202)
