"""The HTTP application factory: everything arrives as arguments, nothing is global."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.types import ASGIApp

from moorage.http.context import HttpContext
from moorage.http.errors import EXCEPTION_HANDLERS
from moorage.http.hot import HotReads
from moorage.http.middleware import RequestMiddleware
from moorage.http.routes import ROUTES, RouteSpec, starlette_routes
from moorage.http.routing import IndexedRouter


def create_http_app(context: HttpContext, routes: Sequence[RouteSpec] = ROUTES) -> ASGIApp:
    """The ASGI app serving ``routes`` (the whole route table unless a test narrows it).

    The request and API-version middleware wrap Starlette from outside so that they also see
    (and tag) the 500 responses that Starlette's outermost error middleware writes; inside
    them, ``HotReads`` answers the plain hot pulls itself and hands the rest to Starlette.
    """

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        for callback in context.on_shutdown:
            callback()

    app = Starlette(exception_handlers=dict(EXCEPTION_HANDLERS))
    router = IndexedRouter(starlette_routes(routes, read_only=context.read_only), lifespan=lifespan)
    app.router = router
    app.state.context = context
    return RequestMiddleware(HotReads(app, router, context), context.metrics)
