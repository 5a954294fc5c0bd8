"""Blob uploads: ``POST``/``PATCH``/``PUT``/``GET``/``DELETE`` under ``/blobs/uploads/``."""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response

from moorage.domain.errors import MoorageError, UploadRangeError
from moorage.domain.records import RepositoryReference
from moorage.http.v2.common import (
    body_blocks,
    call,
    content_length,
    empty,
    repository,
    services,
    upload_headers,
)
from moorage.services.uploads import UploadService

_CONTENT_RANGE = re.compile(r"^(?:bytes[ =])?(\d+)-(\d+)(?:/(?:\d+|\*))?$")


def parse_content_range(header: str) -> tuple[int, int] | None:
    """``<start>-<end>`` (inclusive; ``bytes``/``/total`` tolerated); None when malformed or
    inverted."""
    match = _CONTENT_RANGE.match(header.strip())
    if match is None or int(match.group(2)) < int(match.group(1)):
        return None
    return int(match.group(1)), int(match.group(2))


async def _chunk_range(
    request: Request, uploads: UploadService, repo: RepositoryReference, upload_id: str
) -> tuple[int, int] | None:
    """The request's ``Content-Range``. A malformed one is as unusable as an out-of-order
    one: 416, telling the client where the session stands."""
    header = request.headers.get("content-range")
    if header is None:
        return None
    parsed = parse_content_range(header)
    if parsed is None:
        status = await call(uploads.status, repo, upload_id)
        raise UploadRangeError(upload_id, status.size)
    return parsed


def _blob_created(name: str, digest: str) -> Response:
    return empty(201, {"Location": f"/v2/{name}/blobs/{digest}", "Docker-Content-Digest": digest})


async def start_upload(request: Request) -> Response:
    """Session start, single-request upload (``?digest=``) or cross-repository mount."""
    registry = services(request)
    repo = await repository(request, write=True)
    name = request.path_params["name"]
    query = request.query_params
    digest = query.get("digest")
    if digest:
        blob = await call(
            registry.uploads.upload_whole,
            repo,
            digest,
            body_blocks(request),
            content_length(request),
        )
        return _blob_created(name, blob.digest or digest)
    mount, source_name = query.get("mount"), query.get("from")
    if mount and source_name:
        try:
            source = await call(registry.repositories.for_read, source_name)
            mounted = await call(registry.blobs.mount, repo, mount, source)
        except MoorageError:
            mounted = None  # never fail a mount: fall back to a normal upload
        if mounted is not None:
            return _blob_created(name, mount)
    progress = await call(registry.uploads.start, repo)
    return empty(202, upload_headers(name, progress.upload_id, progress.size))


async def upload_status(request: Request) -> Response:
    repo = await repository(request, write=True)
    upload_id = request.path_params["upload_id"]
    progress = await call(services(request).uploads.status, repo, upload_id)
    return empty(204, upload_headers(request.path_params["name"], upload_id, progress.size))


async def patch_upload(request: Request) -> Response:
    registry = services(request)
    repo = await repository(request, write=True)
    upload_id = request.path_params["upload_id"]
    content_range = await _chunk_range(request, registry.uploads, repo, upload_id)
    progress = await call(
        registry.uploads.append,
        repo,
        upload_id,
        body_blocks(request),
        content_range=content_range,
        content_length=content_length(request),
    )
    return empty(202, upload_headers(request.path_params["name"], upload_id, progress.size))


async def finish_upload(request: Request) -> Response:
    registry = services(request)
    repo = await repository(request, write=True)
    upload_id = request.path_params["upload_id"]
    content_range = await _chunk_range(request, registry.uploads, repo, upload_id)
    digest = request.query_params.get("digest")
    blob = await call(
        registry.uploads.finish,
        repo,
        upload_id,
        digest,
        body_blocks(request),
        content_range=content_range,
        content_length=content_length(request),
    )
    return _blob_created(request.path_params["name"], blob.digest or str(digest))


async def cancel_upload(request: Request) -> Response:
    repo = await repository(request, write=True)
    await call(services(request).uploads.cancel, repo, request.path_params["upload_id"])
    return empty(204)
