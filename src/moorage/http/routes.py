"""The route table: every HTTP route with its method, path, endpoint and required access.

Later issues add the registry API here; authorization reads ``access`` per route, and read-only
mode drops the routes that write.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from enum import Enum

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from moorage.http import system
from moorage.http.v2 import base

Endpoint = Callable[[Request], Awaitable[Response]] | Callable[[Request], Response]


class Access(Enum):
    """What a caller needs on the addressed repository (or registry) to use a route."""

    NONE = "none"  # no repository permission (ping, health, metrics)
    PULL = "pull"
    PUSH = "push"
    DELETE = "delete"
    CATALOG = "catalog"  # the registry-wide repository listing

    @property
    def writes(self) -> bool:
        return self in (Access.PUSH, Access.DELETE)


@dataclass(frozen=True, slots=True)
class RouteSpec:
    method: str
    path: str
    endpoint: Endpoint
    access: Access
    name: str


ROUTES: tuple[RouteSpec, ...] = (
    RouteSpec("GET", "/v2/", base.api_check, Access.NONE, "v2.base"),
    # Some clients ping without the trailing slash; answer rather than redirect.
    RouteSpec("GET", "/v2", base.api_check, Access.NONE, "v2.base.no_slash"),
    RouteSpec("GET", "/healthz", system.healthz, Access.NONE, "healthz"),
    RouteSpec("GET", "/metrics", system.metrics, Access.NONE, "metrics"),
)


def starlette_routes(specs: Iterable[RouteSpec], *, read_only: bool) -> list[Route]:
    """Starlette routes for the table; GET routes answer HEAD as well."""
    return [
        Route(spec.path, spec.endpoint, methods=[spec.method], name=spec.name)
        for spec in specs
        if not (read_only and spec.access.writes)
    ]
