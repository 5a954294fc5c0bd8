"""Operational endpoints: ``/healthz``, ``/healthz/storage`` and ``/metrics``."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from moorage.domain.errors import NotFoundError
from moorage.http.context import get_context
from moorage.http.health import run_checks


async def healthz(request: Request) -> Response:
    """200 when every component answers, else 503 naming the ones that do not."""
    context = get_context(request)
    statuses = await run_checks(context.health_checks, context.health_timeout_s)
    failing = [status.component for status in statuses if not status.healthy]
    components = {
        status.component: (
            {"status": "ok"} if status.healthy else {"status": "error", "error": status.error}
        )
        for status in statuses
    }
    body = {
        "status": "unavailable" if failing else "ok",
        "failing": failing,
        "components": components,
    }
    return JSONResponse(body, status_code=503 if failing else 200)


def storage_usage(request: Request) -> Response:
    """Per location, the blobs and bytes recorded there and the upload sessions open; with
    ``?gc=true``, what the next GC would free (a dry run: it reads every candidate). For
    superusers; a plain function, so its queries run in a worker thread. Not part of
    ``/healthz``, which probes poll: that one stays a cheap liveness check."""
    usage = get_context(request).storage_usage
    if usage is None:
        raise NotFoundError("storage accounting is not available")
    include_gc = request.query_params.get("gc", "false").lower() in ("1", "true", "yes")
    return JSONResponse(usage.report(include_gc=include_gc).as_document())


def metrics(request: Request) -> Response:
    """Prometheus text format; a plain function so Starlette runs it in a worker thread."""
    registry = get_context(request).metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
