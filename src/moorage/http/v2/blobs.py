"""``GET``/``HEAD``/``DELETE /v2/<name>/blobs/<digest>``: ranged, streamed, never buffered."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from moorage.domain.records import Blob
from moorage.http.v2.common import empty, on_repository, services, stored_bytes_response

IMMUTABLE = "max-age=31536000, immutable"


def blob_headers(digest: str) -> dict[str, str]:
    return {
        "Docker-Content-Digest": digest,
        "Content-Type": "application/octet-stream",
        "Accept-Ranges": "bytes",
        "ETag": f'"{digest}"',
        "Cache-Control": IMMUTABLE,
    }


def blob_head_headers(digest: str, blob: Blob) -> dict[str, str]:
    """A blob HEAD's headers, answered from its record."""
    return {**blob_headers(digest), "Content-Length": str(blob.compressed_size or 0)}


async def get_blob(request: Request) -> Response:
    digest = request.path_params["digest"]
    blobs = services(request).blobs
    if request.method == "HEAD" and "range" not in request.headers:
        # The record answers a HEAD: no storage round trip (a HEAD never redirects).
        blob = await on_repository(request, blobs.stat, digest)
        return Response(b"", headers=blob_head_headers(digest, blob))
    content = await on_repository(request, blobs.content, digest)
    redirect_url = content.redirect_url
    return stored_bytes_response(
        request,
        blob_headers(content.digest),
        size=content.size,
        noun="blob",
        chunks=content.chunks,
        local_file=content.local_file,
        redirect=None
        if redirect_url is None
        else lambda: RedirectResponse(
            redirect_url, status_code=307, headers={"Docker-Content-Digest": content.digest}
        ),
    )


async def delete_blob(request: Request) -> Response:
    await on_repository(request, services(request).blobs.unlink, request.path_params["digest"])
    return empty(202)
