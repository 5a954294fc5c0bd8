"""Shared pieces of the /v2 endpoints: services from the request, body streaming, headers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

import anyio
import anyio.from_thread
import anyio.to_thread
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from moorage.domain.errors import OperationUnsupportedError, RequestBodyError
from moorage.domain.records import RepositoryReference
from moorage.http.access import Access, caller_of, route_access
from moorage.http.context import get_context
from moorage.http.errors import ErrorCode, error_response
from moorage.http.inputs import parse_byte_range
from moorage.services.reads import is_pure_read
from moorage.services.registry import RegistryServices
from moorage.services.repositories import Resolution

P = ParamSpec("P")
T = TypeVar("T")
BODY_BLOCK = 1 << 20  # hand request bodies to storage in blocks of about this size
FILE_BLOCK = 1 << 20  # local blob files are read and sent in blocks of this size


def services(request: Request) -> RegistryServices:
    registry = get_context(request).registry
    if registry is None:
        raise OperationUnsupportedError("the registry API is not configured")
    return registry


async def call(function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Services and the model block (database, disk): run them off the event loop."""
    return await run_in_threadpool(function, *args, **kwargs)


_RESOLUTIONS = {
    Access.PULL: Resolution.READ,
    Access.PUSH: Resolution.WRITE,
    Access.DELETE: Resolution.WRITE,
    Access.CREATE: Resolution.CREATE,
    Access.WEB_SEED: Resolution.READ,
}


def _resolver(request: Request) -> Callable[[], RepositoryReference]:
    """The URL's repository, found as the route's declared access says: read or write an
    existing one, or create it on push (and make its creator its admin)."""
    resolution = _RESOLUTIONS[route_access(request)]
    repositories = services(request).repositories
    name = request.path_params["name"]
    on_created = None
    caller = caller_of(request)
    authorizer = get_context(request).authorizer
    if resolution is Resolution.CREATE and authorizer is not None and not caller.open:

        def on_created(repository: RepositoryReference) -> None:
            authorizer.repository_created(caller.principal, repository)

    return lambda: repositories.resolve(name, resolution, on_created)


async def repository(request: Request) -> RepositoryReference:
    resolve = _resolver(request)
    if get_context(request).inline_reads and route_access(request) is Access.PULL:
        return resolve()  # a pure read (RepositoryResolver.for_read)
    return await run_in_threadpool(resolve)


async def on_repository(
    request: Request,
    function: Callable[Concatenate[RepositoryReference, P], T],
    *args: P.args,
    **kwargs: P.kwargs,
) -> T:
    return await _on_repository(request, None, function, *args, **kwargs)


async def streaming_on_repository(
    request: Request,
    function: Callable[Concatenate[RepositoryReference, P], T],
    *args: P.args,
    **kwargs: P.kwargs,
) -> T:
    """``on_repository`` for a write that streams a request body from the client: it runs
    on threads of its own (``HttpContext.upload_threads``), so clients that send slowly can
    hold only those, never the threads every other request needs."""
    limiter = get_context(request).upload_threads.limiter()
    return await _on_repository(request, limiter, function, *args, **kwargs)


async def _on_repository(
    request: Request,
    limiter: anyio.CapacityLimiter | None,
    function: Callable[Concatenate[RepositoryReference, P], T],
    *args: P.args,
    **kwargs: P.kwargs,
) -> T:
    """Resolves the URL's repository and runs ``function`` on it, in one worker-thread hop
    (each hop costs more than a small request's whole database work). A pull whose call is
    a declared pure database read (``services.reads``) runs on the event loop itself on the
    embedded SQLite database: it takes microseconds, never waits on a lock in WAL mode, and a
    thread hop (with the GIL handover it needs) costs more."""
    resolve = _resolver(request)

    def work() -> T:
        return function(resolve(), *args, **kwargs)

    context = get_context(request)
    if context.inline_reads and route_access(request) is Access.PULL and is_pure_read(function):
        return work()
    if limiter is not None:
        return await anyio.to_thread.run_sync(work, limiter=limiter)
    return await run_in_threadpool(work)


@dataclass(frozen=True, slots=True)
class Body:
    """A request body for a storage write. ``chunks`` is the whole body in memory when it
    fit in the first block, else a blocking iterator for a worker thread (``streams``)."""

    chunks: Iterable[bytes]
    streams: bool


class BodyStream:
    """The request body, pulled piece by piece from the ASGI ``receive``, each wait bounded
    by the idle timeout. Any way the body can fail (a disconnect, a malformed chunked
    encoding the server reports as one, silence) becomes a RequestBodyError: the request
    fails, the client is dropped, and nothing it sent counts."""

    def __init__(self, request: Request, idle_timeout_s: float) -> None:
        self.stream: AsyncIterator[bytes] = request.stream()
        self.idle_timeout_s = idle_timeout_s

    async def piece(self) -> bytes | None:
        try:
            with anyio.fail_after(self.idle_timeout_s):
                return await self.stream.__anext__()
        except StopAsyncIteration:
            return None
        except TimeoutError:
            raise RequestBodyError(
                f"no body bytes for {self.idle_timeout_s:g} s: request dropped", timed_out=True
            ) from None
        except ClientDisconnect:
            raise RequestBodyError("the request body ended early") from None

    async def block(self) -> bytes | None:
        """About ``BODY_BLOCK`` bytes (fewer at the end), None once the body is over."""
        parts: list[bytes] = []
        size = 0
        while size < BODY_BLOCK:
            chunk = await self.piece()
            if chunk is None:
                break
            if chunk:
                parts.append(chunk)
                size += len(chunk)
        return b"".join(parts) if parts else None


async def body_source(request: Request) -> Body:
    """The body for a storage write. Its first block is read here, on the event loop: most
    layers and configs fit in it, and the worker thread then gets plain bytes; and a client
    that sends headers and then nothing holds no thread at all, only its connection, until
    the idle timeout drops it. A longer body streams from a worker thread (``_blocks``)."""
    stream = BodyStream(request, get_context(request).body_idle_timeout_s)
    first = await stream.block()
    if first is None:
        return Body((), streams=False)
    if len(first) < BODY_BLOCK:  # the body ended within the first block
        return Body((first,), streams=False)
    return Body(_blocks(first, stream), streams=True)


def _blocks(first: bytes, stream: BodyStream) -> Iterator[bytes]:
    """The body as a blocking iterator for a worker thread: blocks of ~1 MiB pulled from
    the event loop as storage consumes them, so nothing is held whole in memory and chunked
    transfer encoding works like any other body."""
    yield first
    while True:
        block = anyio.from_thread.run(stream.block)
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
    """A whole local file, read off the event loop in FILE_BLOCK pieces and sent as they come.
    Not ``pathsend``: granian 2.8's pathsend reads 128 KiB at a time and writes 128-512 KiB
    (no sendfile), 1.6-1.9 GB/s here; 1 MiB blocks reach nginx's sendfile rate with memory
    flat in the file's size (one block per pull in flight). ``headers`` hold Content-Length."""

    def __init__(self, path: Path, headers: dict[str, str]) -> None:
        super().__init__(None, status_code=200, headers=headers)
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handle = await anyio.to_thread.run_sync(self.path.open, "rb", 0)
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            while True:
                block = await anyio.to_thread.run_sync(handle.read, FILE_BLOCK)
                # A regular file reads short only at its end: no extra hop to learn it.
                last = len(block) < FILE_BLOCK
                await send({"type": "http.response.body", "body": block, "more_body": not last})
                if last:
                    break
        finally:
            handle.close()


def stored_bytes_response(
    request: Request,
    headers: dict[str, str],
    *,
    size: int,
    noun: str,
    chunks: Callable[[int, int], Iterator[bytes]],
    local_file: Path | None,
    redirect: Callable[[], Response] | None = None,
) -> Response:
    """A GET or HEAD of ``size`` stored bytes, whole or the one range asked: 416 (naming
    ``noun``) for a range outside them, 206 for a range. A whole body is ``redirect()``
    when given, else read from ``local_file`` in large blocks, else streamed.
    ``headers`` gains Content-Length (and Content-Range)."""
    wanted = parse_byte_range(request.headers.get("range"), size)
    if wanted is False:
        return error_response(
            416,
            ErrorCode.RANGE_INVALID,
            f"the range is outside the {noun}'s {size} bytes",
            headers={"Content-Range": f"bytes */{size}"},
        )
    status, start, length = 200, 0, size
    if isinstance(wanted, tuple):
        start, end = wanted
        status, length = 206, end - start + 1
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(length)
    if request.method == "HEAD":
        return Response(b"", status_code=status, headers=headers)
    if status == 200 and redirect is not None:
        return redirect()
    if status == 200 and local_file is not None:
        return LocalFileResponse(local_file, headers)
    return StreamingResponse(chunks(start, length), status_code=status, headers=headers)
