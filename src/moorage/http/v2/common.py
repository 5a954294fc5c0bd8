"""Shared pieces of the /v2 endpoints: services from the request, body streaming, headers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

import anyio.from_thread
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from moorage.domain.errors import OperationUnsupportedError
from moorage.domain.records import RepositoryReference
from moorage.http.context import get_context
from moorage.services.registry import RegistryServices

P = ParamSpec("P")
T = TypeVar("T")
BODY_BLOCK = 1 << 20  # hand request bodies to storage in blocks of about this size
PATHSEND = "http.response.pathsend"  # the ASGI extension: the server sends a file itself


def services(request: Request) -> RegistryServices:
    registry = get_context(request).registry
    if registry is None:
        raise OperationUnsupportedError("the registry API is not configured")
    return registry


async def call(function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Services and the model block (database, disk): run them off the event loop."""
    return await run_in_threadpool(function, *args, **kwargs)


async def repository(request: Request, *, write: bool) -> RepositoryReference:
    resolver = services(request).repositories
    name = request.path_params["name"]
    return await call(resolver.for_write if write else resolver.for_read, name)


async def on_repository(
    request: Request,
    write: bool,
    function: Callable[Concatenate[RepositoryReference, P], T],
    *args: P.args,
    **kwargs: P.kwargs,
) -> T:
    """Resolves the URL's repository and runs ``function`` on it, in one worker-thread hop
    (each hop costs more than a small request's whole database work). Reads on the embedded
    SQLite database run on the event loop itself: they take microseconds, never wait on a
    lock in WAL mode, and a thread hop (with the GIL handover it needs) costs more."""
    resolver = services(request).repositories
    name = request.path_params["name"]

    def work() -> T:
        found = resolver.for_write(name) if write else resolver.for_read(name)
        return function(found, *args, **kwargs)

    if not write and get_context(request).inline_reads:
        return work()
    return await run_in_threadpool(work)


async def small_body(request: Request) -> bytes | None:
    """The whole body, read on the event loop, when ``Content-Length`` announces at most one
    block (most layers and configs): the worker thread then gets plain bytes instead of
    calling back into the loop for them, a round trip per block. None otherwise."""
    length = content_length(request)
    if length is None or length > BODY_BLOCK:
        return None
    return await request.body()


async def body_source(request: Request) -> Iterable[bytes]:
    """The body for a storage write: whole when small, else streamed (``body_blocks``)."""
    body = await small_body(request)
    return body_blocks(request) if body is None else [body]


def body_blocks(request: Request) -> Iterator[bytes]:
    """The request body as a blocking iterator for a worker thread: blocks of ~1 MiB pulled
    from the event loop as storage consumes them, so nothing is held whole in memory and
    chunked transfer encoding works like any other body."""
    stream: AsyncIterator[bytes] = request.stream()

    async def next_block() -> bytes | None:
        parts: list[bytes] = []
        size = 0
        while size < BODY_BLOCK:
            try:
                chunk = await stream.__anext__()
            except StopAsyncIteration:
                break
            if chunk:
                parts.append(chunk)
                size += len(chunk)
        return b"".join(parts) if parts else None

    while True:
        block = anyio.from_thread.run(next_block)
        if block is None:
            return
        yield block


def content_length(request: Request) -> int | None:
    """The announced body size; None when absent, SIZE_INVALID when malformed (issue 11)."""
    from moorage.http.inputs import parse_content_length

    return parse_content_length(request.headers.get("content-length"))


def empty(status: int, headers: dict[str, str] | None = None) -> Response:
    """A body-less response with an explicit ``Content-Length: 0`` (keep-alive clients)."""
    return Response(b"", status_code=status, headers=headers)


def upload_location(name: str, upload_id: str) -> str:
    return f"/v2/{name}/blobs/uploads/{upload_id}"


def upload_range(size: int) -> str:
    """``0-<last byte>``, no ``bytes=`` prefix (what Docker parses); ``0-0`` when empty."""
    return f"0-{max(size - 1, 0)}"


def upload_headers(name: str, upload_id: str, size: int) -> dict[str, str]:
    return {
        "Location": upload_location(name, upload_id),
        "Range": upload_range(size),
        "Docker-Upload-UUID": upload_id,
    }


class LocalFileResponse(Response):
    """A whole local file sent by the server itself (ASGI ``pathsend``): the bytes never pass
    through Python. ``headers`` must hold the file's ``Content-Length``."""

    def __init__(self, path: Path, headers: dict[str, str]) -> None:
        super().__init__(None, status_code=200, headers=headers)
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        await send({"type": PATHSEND, "path": str(self.path)})
