"""``/c1/squash/<name>/<reference>``: an image as one flattened layer in a ``docker load``
tarball; ``/c1/squash-signature/<name>/<reference>`` its detached GPG signature;
``/c1/keys/squash.asc`` the key that signs them (docs/derived-images.md).

``<reference>`` is the last path segment (a tag, or a manifest digest), ``<name>`` all
segments before it: a tag or digest never holds a ``/``, so the split is unambiguous.

The first request for an image builds it, in a worker thread of a pool of its own
(``derived_images.build_threads`` per worker process). Requests that find another build
of the same image under way (in any process) wait for it, up to
``derived_images.build_wait_s``, then get 202 with ``Retry-After``.
"""

from __future__ import annotations

import time

import anyio
import anyio.to_thread
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from moorage.domain.records import RepositoryReference
from moorage.http.context import get_context
from moorage.http.v2.common import call, empty, on_repository, stored_bytes_response
from moorage.services.squash.service import (
    SquashContent,
    SquashingDisabledError,
    SquashService,
    SquashTarget,
)

TARBALL = "application/x-tar"
SIGNATURE = "application/pgp-signature"
PUBLIC_KEY = "application/pgp-keys"
POLL_S = 0.25  # how often a waiting request looks whether another's build finished
RETRY_AFTER_S = 5


def _service(request: Request) -> SquashService:
    service = get_context(request).squash
    if service is None:
        raise SquashingDisabledError("squashed images are not enabled on this registry")
    return service


async def _repository_service(request: Request) -> SquashService:
    """The service, once the repository is known to exist: an unknown one is NAME_UNKNOWN
    on these routes too, whether or not squashing is on."""
    if get_context(request).squash is None:
        await on_repository(request, _exists)
    return _service(request)


def _exists(_repository: RepositoryReference) -> None:
    return None


async def _built(request: Request, service: SquashService) -> SquashContent | None:
    """The complete image, built now if needed; None when another build of it did not
    finish within the wait."""
    platform = request.query_params.get("platform")
    reference = request.path_params["reference"]
    target: SquashTarget = await on_repository(request, service.locate, reference, platform)
    found = await call(service.stored, target)
    if found is not None:
        return found
    context = get_context(request)
    deadline = time.monotonic() + context.squash_wait_s
    limiter = context.squash_threads.limiter()
    while True:
        with anyio.move_on_after(max(deadline - time.monotonic(), 0)):
            # Waiting for a build slot may be cut short; a started build runs to its end.
            found = await anyio.to_thread.run_sync(service.build, target, limiter=limiter)
            if found is not None:
                return found
        if time.monotonic() >= deadline:
            return await call(service.stored, target)
        await anyio.sleep(POLL_S)
        found = await call(service.stored, target)
        if found is not None:
            return found


def _pending() -> Response:
    return empty(202, {"Retry-After": str(RETRY_AFTER_S)})


async def get_squashed(request: Request) -> Response:
    service = await _repository_service(request)
    content = await _built(request, service)
    if content is None:
        return _pending()
    headers = {
        "Content-Type": TARBALL,
        "Accept-Ranges": "bytes",
        "ETag": f'"{content.derived.unique_id}"',
    }
    return stored_bytes_response(
        request,
        headers,
        size=content.size,
        noun="tarball",
        chunks=content.chunks,
        local_file=content.local_file,
    )


async def get_signature(request: Request) -> Response:
    service = await _repository_service(request)
    if service.signer is None:
        raise SquashingDisabledError("this registry does not sign squashed images")
    content = await _built(request, service)
    if content is None:
        return _pending()
    signature = await call(service.signature, content)
    return PlainTextResponse(signature, media_type=SIGNATURE)


async def get_public_key(request: Request) -> Response:
    key = await call(_service(request).public_key)
    return PlainTextResponse(key, media_type=PUBLIC_KEY)
