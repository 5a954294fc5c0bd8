"""CPU per small request with no network: the ASGI application called in a loop.

A real ``moorage serve`` seeds a data directory (the bench's small image, pushed by the owner,
one repository public and a reader granted read on the other, the reader's bearer token), is
stopped, and this process builds the application over that directory the way a worker does
(``moorage.app.asgi_from_env``) and drives raw ASGI requests through it. The figure is the
process's CPU time per request: far steadier than a rate on a shared machine, and what the
server stack multiplies under load (docs/performance.md). Compare two checkouts by running
it twice, once with ``PYTHONPATH=<other checkout>/src``::

    .venv/bin/python -m bench.inproc [--requests N] [--rounds K] [--profile CASE]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import secrets
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from bench import access, images
from bench.servers import start_moorage

Message = dict[str, Any]
App = Callable[
    [Message, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
    Awaitable[None],
]
PUBLIC, PRIVATE = "bench/latency", "bench/private"


def http_scope(method: str, path: str, headers: Mapping[str, str], query: str = "") -> Message:
    """An HTTP request's ASGI scope, as a server on 127.0.0.1 would hand it over."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(key.lower().encode(), value.encode()) for key, value in headers.items()],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 5000),
    }


def _scope(method: str, path: str, authorization: str | None) -> Message:
    headers = {"Host": "127.0.0.1", "User-Agent": "bench"}
    if authorization:
        headers["Authorization"] = authorization
    if "/manifests/" in path:
        headers["Accept"] = "application/vnd.oci.image.manifest.v1+json"
    return http_scope(method, path, headers)


async def _receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _status(app: App, scope: Message) -> int:
    statuses: list[int] = []

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    await app(dict(scope), _receive, send)
    return statuses[0]


def _seed(workdir: Path) -> tuple[dict[str, str], images.Seeded, str]:
    """The data directory's settings, the seeded image and the reader's bearer token."""
    password = secrets.token_urlsafe(18)
    settings = access.owner_settings(password)
    server = start_moorage(workdir, 1, settings=settings)
    try:
        server.authorization = access.basic(access.OWNER, password)
        seeded = images.seed_latency_image([server], PUBLIC)
        images.seed_latency_image([server], PRIVATE)
        token = access.share_on_moorage(server, PUBLIC, PRIVATE)
    finally:
        server.stop()
    settings |= {
        "MOORAGE_DATA_DIR": str(server.root / "data"),
        "MOORAGE_LOG_LEVEL": "warning",
    }
    return settings, seeded, token


def cases(seeded: images.Seeded, token: str) -> dict[str, Message]:
    paths = {
        "manifest-tag": ("GET", f"manifests/{seeded.tag}"),
        "manifest-digest": ("GET", f"manifests/{seeded.manifest_digest}"),
        "blob-head": ("HEAD", f"blobs/{seeded.layer_digest}"),
        "blob-head-missing": ("HEAD", "blobs/sha256:" + "0" * 64),
        "tags-list": ("GET", "tags/list"),
    }
    out = {}
    for name, (method, tail) in paths.items():
        out[f"{name} anon"] = _scope(method, f"/v2/{PUBLIC}/{tail}", None)
        out[f"{name} bearer"] = _scope(method, f"/v2/{PRIVATE}/{tail}", "Bearer " + token)
    return out


async def measure(app: App, scopes: dict[str, Message], requests: int, rounds: int) -> None:
    for name, scope in scopes.items():
        status = await _status(app, scope)
        for _ in range(requests // 10):  # warm the caches the first requests fill
            await _status(app, scope)
        best = float("inf")
        for _ in range(rounds):
            started = time.process_time()
            for _ in range(requests):
                await _status(app, scope)
            best = min(best, (time.process_time() - started) / requests)
        print(f"{name:26} {status}  {best * 1e6:6.1f} µs CPU per request")


async def profile(app: App, scope: Message, requests: int) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(requests):
        await _status(app, scope)
    profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.inproc", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--requests", type=int, default=5000, help="per round (default 5000)")
    parser.add_argument("--rounds", type=int, default=3, help="the best round is reported")
    parser.add_argument(
        "--profile", metavar="CASE", help='cProfile one case, e.g. "manifest-tag bearer"'
    )
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="moorage-inproc-"))
    try:
        settings, seeded, token = _seed(workdir)
        os.environ.update(settings)
        import uvloop

        from moorage.app import asgi_from_env

        app: App = asgi_from_env()  # type: ignore[assignment]
        scopes = cases(seeded, token)
        if args.profile:
            if args.profile not in scopes:
                parser.error(f"--profile: one of {', '.join(scopes)}")
            uvloop.run(profile(app, scopes[args.profile], args.requests))
        else:
            uvloop.run(measure(app, scopes, args.requests, args.rounds))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
