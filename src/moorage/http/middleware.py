"""Pure ASGI middleware (no BaseHTTPMiddleware, so streamed bodies stay streamed).

RequestMiddleware: request id (``X-Request-ID`` in and out, bound to every log line of the
request), one log line per request, Prometheus counter and latency by route template.
ApiVersionMiddleware: ``Docker-Distribution-API-Version`` on every /v2 response, errors included.
"""

from __future__ import annotations

import os
import re
import time

import structlog
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from moorage.observability import Metrics, get_logger

log = get_logger("moorage.http.request")

REQUEST_ID_HEADER = "X-Request-ID"
API_VERSION_HEADER = "Docker-Distribution-API-Version"
API_VERSION = "registry/2.0"
UNMATCHED_ROUTE = "<unmatched>"
# Incoming ids end up in logs and headers: accept only short, plain tokens.
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}$")
_QUIET_ROUTES = frozenset({"/healthz", "/metrics"})


def request_id_from(headers: Headers) -> str:
    incoming = headers.get(REQUEST_ID_HEADER, "")
    # 128 random bits as 32 hex digits, like uuid4().hex at a fraction of its cost.
    return incoming if _SANE_REQUEST_ID.match(incoming) else os.urandom(16).hex()


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
        request_id = request_id_from(Headers(scope=scope))
        started = time.perf_counter()
        status = 500
        finished = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, finished
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                finished = True
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self.app(scope, receive, send_wrapper)
            except Exception:
                self._record(scope, 500, started, failed=True)
                if not finished:
                    raise
                # Starlette already sent the 500 body; re-raising would only log it twice.
                return
            self._record(scope, status, started, failed=False)

    def _record(self, scope: Scope, status: int, started: float, *, failed: bool) -> None:
        seconds = time.perf_counter() - started
        route = route_template(scope)
        method = scope["method"]
        self.metrics.observe(method, route, status, seconds)
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
        elif route in _QUIET_ROUTES:
            log.debug("request", **fields)
        else:
            log.info("request", **fields)


class ApiVersionMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v2"):
            await self.app(scope, receive, send)
            return

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[API_VERSION_HEADER] = API_VERSION
            await send(message)

        await self.app(scope, receive, send_wrapper)
