"""Blob uploads: ``POST``/``PATCH``/``PUT``/``GET``/``DELETE`` under ``/blobs/uploads/``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from starlette.requests import Request
from starlette.responses import Response

from moorage.domain.access import Action, repository_scope
from moorage.domain.errors import MoorageError, UploadRangeError
from moorage.domain.records import Blob, RepositoryReference
from moorage.http.access import caller_of, mount_reader, permits
from moorage.http.v2.common import (
    Body,
    body_source,
    content_length,
    empty,
    on_repository,
    services,
    streaming_on_repository,
    upload_headers,
)
from moorage.services.uploads import UploadProgress, UploadService

T = TypeVar("T")


def parse_content_range(header: str) -> tuple[int, int] | None:
    """``<start>-<end>`` (inclusive; ``bytes``/``/total`` tolerated); None when malformed or
    inverted."""
    from moorage.http import inputs  # ASCII digits, 64-bit bounded (issue 11)

    return inputs.parse_content_range(header)


def _chunk_range(
    header: str | None, uploads: UploadService, repo: RepositoryReference, upload_id: str
) -> tuple[int, int] | None:
    """The request's ``Content-Range``. A malformed one is as unusable as an out-of-order
    one: 416, telling the client where the session stands."""
    if header is None:
        return None
    parsed = parse_content_range(header)
    if parsed is None:
        raise UploadRangeError(upload_id, uploads.status(repo, upload_id).size)
    return parsed


def _blob_created(name: str, digest: str) -> Response:
    return empty(201, {"Location": f"/v2/{name}/blobs/{digest}", "Docker-Content-Digest": digest})


# Each endpoint makes one worker-thread hop: the repository is resolved in the same call as
# the upload work (a hop costs more than a small request's whole database work).


def _client(request: Request) -> str | None:
    """Who opens a session, for the per-client cap: the account when the caller has one,
    else the peer's address."""
    principal = caller_of(request).principal
    if principal.name:
        return f"{principal.kind.value}:{principal.name}"
    return request.client.host if request.client is not None else None


async def _with_body(request: Request, body: Body, work: Callable[[RepositoryReference], T]) -> T:
    if body.streams:
        return await streaming_on_repository(request, work)
    return await on_repository(request, work)


async def start_upload(request: Request) -> Response:
    """Session start, single-request upload (``?digest=``) or cross-repository mount."""
    registry = services(request)
    name = request.path_params["name"]
    query = request.query_params
    digest = query.get("digest")
    client = _client(request)
    if digest:
        body = await body_source(request)
        length = content_length(request)

        def whole(repo: RepositoryReference) -> Blob:
            return registry.uploads.upload_whole(repo, digest, body.chunks, length, client)

        blob = await _with_body(request, body, whole)
        return _blob_created(name, blob.digest or digest)
    mount, source_name = query.get("mount"), query.get("from")
    if (
        mount
        and source_name
        and not await permits(request, repository_scope(source_name, Action.PULL))
    ):
        mount = None  # a source the caller may not read: a plain upload, revealing nothing

    reader = mount_reader(request)

    def start(repo: RepositoryReference) -> Response:
        if mount:
            try:
                if source_name:
                    source = registry.repositories.for_read(source_name)
                    mounted = registry.blobs.mount(repo, mount, source)
                else:  # OCI 1.1: from any repository the caller may read
                    mounted = registry.blobs.mount_readable(repo, mount, reader)
            except MoorageError:
                mounted = None  # never fail a mount: fall back to a normal upload
            if mounted is not None:
                return _blob_created(name, mount)
        progress = registry.uploads.start(repo, client)
        return empty(202, upload_headers(name, progress.upload_id, progress.size))

    return await on_repository(request, start)


async def upload_status(request: Request) -> Response:
    upload_id = request.path_params["upload_id"]
    progress = await on_repository(request, services(request).uploads.status, upload_id)
    return empty(204, upload_headers(request.path_params["name"], upload_id, progress.size))


async def patch_upload(request: Request) -> Response:
    uploads = services(request).uploads
    upload_id = request.path_params["upload_id"]
    header = request.headers.get("content-range")
    length = content_length(request)
    body = await body_source(request)

    def append(repo: RepositoryReference) -> UploadProgress:
        content_range = _chunk_range(header, uploads, repo, upload_id)
        return uploads.append(
            repo, upload_id, body.chunks, content_range=content_range, content_length=length
        )

    progress = await _with_body(request, body, append)
    return empty(202, upload_headers(request.path_params["name"], upload_id, progress.size))


async def finish_upload(request: Request) -> Response:
    uploads = services(request).uploads
    upload_id = request.path_params["upload_id"]
    header = request.headers.get("content-range")
    digest = request.query_params.get("digest")
    length = content_length(request)
    body = await body_source(request)

    def finish(repo: RepositoryReference) -> Blob:
        content_range = _chunk_range(header, uploads, repo, upload_id)
        return uploads.finish(
            repo, upload_id, digest, body.chunks, content_range=content_range, content_length=length
        )

    blob = await _with_body(request, body, finish)
    return _blob_created(request.path_params["name"], blob.digest or str(digest))


async def cancel_upload(request: Request) -> Response:
    upload_id = request.path_params["upload_id"]
    await on_repository(request, services(request).uploads.cancel, upload_id)
    return empty(204)
