"""Route lookup in one regular-expression match instead of one per route.

Starlette's router tries its routes one by one, each a regular expression with a greedy
``{name:path}``: a blob ``HEAD`` used to run seventeen of them before it found its own.
``IndexedRouter`` joins, per HTTP method, the patterns of the routes accepting that method
into one alternation, in route order. Its first matching alternative is exactly the route
the linear scan would fully match first. A path that routes know under other methods gets a
405 whose ``Allow`` lists all of their methods (Starlette's names only the first such
route's: ``PATCH`` on a manifest answered ``Allow: GET, HEAD``, hiding PUT and DELETE).
Anything else (404, slash redirects, lifespan) goes to Starlette's own scan, unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Match, Route, Router
from starlette.types import Lifespan, Receive, Scope, Send

_NAMED_GROUP = re.compile(r"\(\?P<[^>]+>")


def _alternative(index: int, route: Route) -> str:
    # Group names repeat across routes ({name}), so each route's own become plain groups;
    # the route is told apart by the name of the group wrapping its whole pattern.
    return f"(?P<r{index}>{_NAMED_GROUP.sub('(?:', route.path_regex.pattern)})"


class IndexedRouter(Router):
    def __init__(self, routes: Sequence[BaseRoute], lifespan: Lifespan[Any] | None) -> None:
        super().__init__(list(routes), lifespan=lifespan)
        plain = [route for route in self.routes if isinstance(route, Route) and route.methods]
        # A 405 may be answered here only when no route could take every method.
        self._all_by_method = len(plain) == len(self.routes)
        methods = {method for route in plain for method in route.methods or ()}
        self._by_method: dict[str, tuple[re.Pattern[str], list[Route]]] = {}
        for method in methods:
            candidates = [route for route in plain if method in (route.methods or ())]
            pattern = "|".join(_alternative(i, route) for i, route in enumerate(candidates))
            self._by_method[method] = (re.compile(pattern), candidates)

    def find(self, scope: Scope) -> tuple[Route, Scope] | None:
        """The route the linear scan would take for ``scope`` and the scope entries it
        adds (``path_params`` among them); None when no route takes its method and path."""
        if scope["type"] != "http" or scope.get("root_path"):
            return None
        indexed = self._by_method.get(scope["method"])
        found = None if indexed is None else indexed[0].match(scope["path"])
        if indexed is None or found is None or found.lastgroup is None:
            return None
        route = indexed[1][int(found.lastgroup[1:])]
        match, child_scope = route.matches(scope)
        return (route, child_scope) if match is Match.FULL else None

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = self.find(scope)
        if found is not None:
            route, child_scope = found
            scope.setdefault("router", self)
            scope["route"] = route
            scope.update(child_scope)
            await route.handle(scope, receive, send)
            return
        if scope["type"] == "http" and not scope.get("root_path") and self._all_by_method:
            self._refuse_method(scope)
        await super().app(scope, receive, send)

    def _refuse_method(self, scope: Scope) -> None:
        """405 with every method the path's routes take, when it has routes at all."""
        partial = [
            route
            for route in self.routes
            if isinstance(route, Route) and route.matches(scope)[0] is Match.PARTIAL
        ]
        if partial:
            scope["route"] = partial[0]  # the metrics label: the path's template
            allowed = sorted({method for route in partial for method in route.methods or ()})
            raise HTTPException(status_code=405, headers={"Allow": ", ".join(allowed)})
