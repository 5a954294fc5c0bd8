"""Pure ASGI middleware (no BaseHTTPMiddleware, so streamed bodies stay streamed).

RequestMiddleware: request id (``X-Request-ID`` in and out, bound to every log line of the
request), one log line per request, Prometheus counter and latency by route template, and
``Docker-Distribution-API-Version`` on every /v2 response, errors included. One wrapper
does it all: it runs on every request, so it reads raw headers and appends raw ones.
"""

from __future__ import annotations

import logging
import random
import re
import time

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from moorage.observability import Metrics, get_logger

log = get_logger("moorage.http.request")
_log_levels = logging.getLogger("moorage.http.request")  # the level check, at stdlib's cost

REQUEST_ID_HEADER = "X-Request-ID"
API_VERSION_HEADER = "Docker-Distribution-API-Version"
API_VERSION = "registry/2.0"
UNMATCHED_ROUTE = "<unmatched>"
# Incoming ids end up in logs and headers: accept only short, plain tokens.
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}$")
_QUIET_ROUTES = frozenset({"/healthz", "/metrics"})
_REQUEST_ID_KEY = REQUEST_ID_HEADER.lower().encode()
_REQUEST_ID_RAW = REQUEST_ID_HEADER.encode()
_API_VERSION_RAW = (API_VERSION_HEADER.encode(), API_VERSION.encode())


def request_id_from(raw_headers: list[tuple[bytes, bytes]]) -> str:
    """The client's id when it is a plain token, else 128 random bits as 32 hex digits. They
    only correlate log lines, so the per-process Mersenne Twister (reseeded in every forked
    worker) serves: no system call per request."""
    for key, value in raw_headers:
        if key == _REQUEST_ID_KEY:
            incoming = value.decode("latin-1")
            if _SANE_REQUEST_ID.match(incoming):
                return incoming
            break
    return f"{random.getrandbits(128):032x}"


def route_template(scope: Scope) -> str:
    """The matched route's path pattern (bounded label values), never the raw path."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED_ROUTE


class RequestMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(scope["headers"])
        extra_headers = [(_REQUEST_ID_RAW, request_id.encode())]
        if scope["path"].startswith("/v2"):
            extra_headers.append(_API_VERSION_RAW)
        started = time.perf_counter()
        status = 500
        finished = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, finished
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), *extra_headers]
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                finished = True
            await send(message)

        bound = structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            try:
                await self.app(scope, receive, send_wrapper)
            except Exception:
                self._record(scope, 500, started, failed=True)
                if not finished:
                    raise
                # Starlette already sent the 500 body; re-raising would only log it twice.
                return
            self._record(scope, status, started, failed=False)
        finally:
            structlog.contextvars.reset_contextvars(**bound)

    def _record(self, scope: Scope, status: int, started: float, *, failed: bool) -> None:
        seconds = time.perf_counter() - started
        route = route_template(scope)
        method = scope["method"]
        self.metrics.observe(method, route, status, seconds)
        level = logging.DEBUG if route in _QUIET_ROUTES else logging.INFO
        if not failed and not _log_levels.isEnabledFor(level):
            return  # the line would be dropped: do not build it
        fields = {
            "method": method,
            "path": scope["path"],
            "route": route,
            "status": status,
            "duration_ms": round(seconds * 1000, 2),
            "client": scope["client"][0] if scope.get("client") else None,
        }
        if failed:
            log.exception("request failed", **fields)
        else:
            log.log(level, "request", **fields)
