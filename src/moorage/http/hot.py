"""Hot pulls without the framework: the small reads clients repeat most, answered straight
from ASGI when nothing about the request is unusual.

A manifest GET or HEAD, a blob HEAD and a first tags/list page cost ~75 µs of CPU through
Starlette (routing, exception middleware, request and response objects, the seam's async
steps), of which the database reads take about a third. ``HotReads`` sits between the
request middleware (request ids, logs, metrics: unchanged) and Starlette, finds the route
with the router's own lookup, and answers these three from the same pieces the endpoints use:
the access seam's memory-only admission (``access.pull_admitted_from_memory``), the services'
pure reads and the endpoints' header builders. It answers the plain success, and the 4xx of
a domain error the read raised (a blob or repository not there yet: a push asks before every
layer) through the one error table, as the endpoint would. Anything else falls through to the full
application, which answers it exactly as before:

- any query string, an ``If-None-Match`` (manifests) or a ``Range`` (blobs);
- a database that is not the embedded one (reads there wait on the network: a thread's job);
- a caller the seam cannot admit from memory (a token not seen yet is verified here, but an
  account not checked lately, a Basic login not remembered, a refusal: all go through);
- an answer the pure read cannot give (a tag needing a conversion or an expired one), and any
  error that is not a domain 4xx (the full application raises it again and answers it in the
  registry's format). Nothing here writes, so answering twice never changes anything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from moorage.domain.errors import MoorageError
from moorage.http.access import pull_admitted_from_memory
from moorage.http.context import HttpContext
from moorage.http.errors import domain_error_response
from moorage.http.routing import IndexedRouter
from moorage.http.v2.blobs import blob_head_headers
from moorage.http.v2.listing import tags_answer
from moorage.http.v2.manifests import accepted_in, manifest_headers
from moorage.services.registry import RegistryServices


@dataclass(frozen=True, slots=True)
class HotRequest:
    """What a hot answer reads of the request: the route's path parameters and the few
    headers that matter (any header line that would change the answer is in ``unusual``)."""

    method: str
    params: dict[str, str]
    authorization: str | None
    accept: list[str]
    unusual: frozenset[bytes]


@dataclass(frozen=True, slots=True)
class HotAnswer:
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class HotRefusal:
    """A domain error's answer, rendered by the one error table as the full path would."""

    response: Response


Answerer = Callable[[RegistryServices, HotRequest], HotAnswer | None]
_UNUSUAL = frozenset({b"if-none-match", b"range"})


def _manifest(registry: RegistryServices, request: HotRequest) -> HotAnswer | None:
    if b"if-none-match" in request.unusual:
        return None
    repository = registry.repositories.for_read(request.params["name"])
    body = registry.manifests.get_stored(
        repository, request.params["reference"], accepted_in(request.accept)
    )
    if body is None:
        return None
    return HotAnswer(manifest_headers(body), b"" if request.method == "HEAD" else body.content)


def _blob_head(registry: RegistryServices, request: HotRequest) -> HotAnswer | None:
    if request.method != "HEAD" or b"range" in request.unusual:
        return None  # a GET streams the blob: the full application's job
    digest = request.params["digest"]
    blob = registry.blobs.stat(registry.repositories.for_read(request.params["name"]), digest)
    return HotAnswer(blob_head_headers(digest, blob), b"")


def _tags(registry: RegistryServices, request: HotRequest) -> HotAnswer | None:
    name = request.params["name"]  # no query string: no n, no last
    page = registry.listing.tags(registry.repositories.for_read(name), None, None)
    body, headers = tags_answer(name, None, page)
    return HotAnswer(headers, body)  # a HEAD's body is dropped by the server, as Starlette's


ANSWERERS: dict[str, Answerer] = {
    "v2.manifest": _manifest,
    "v2.blob": _blob_head,
    "v2.tags": _tags,
}


class HotReads:
    """The ASGI layer: ``app`` is the full application, ``router`` its route table."""

    def __init__(self, app: ASGIApp, router: IndexedRouter, context: HttpContext) -> None:
        self.app = app
        self.router = router
        self.context = context
        # On by construction only where the reads may run on the event loop.
        self.enabled = context.inline_reads and context.registry is not None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        answer = self._answer(scope) if self.enabled else None
        if answer is None:
            await self.app(scope, receive, send)
            return
        if isinstance(answer, HotRefusal):
            await answer.response(scope, receive, send)
            return
        raw = [
            (key.lower().encode("latin-1"), value.encode("latin-1"))
            for key, value in answer.headers.items()
        ]
        await send({"type": "http.response.start", "status": 200, "headers": raw})
        await send({"type": "http.response.body", "body": answer.body})

    def _answer(self, scope: Scope) -> HotAnswer | HotRefusal | None:
        if scope.get("query_string") or scope.get("method") not in ("GET", "HEAD"):
            return None
        found = self.router.find(scope)
        if found is None:
            return None
        route, child_scope = found
        answerer = ANSWERERS.get(route.name)
        if answerer is None:
            return None
        request = _hot_request(scope, child_scope)
        if (
            pull_admitted_from_memory(self.context, request.authorization, request.params["name"])
            is None
        ):
            return None
        registry = self.context.registry
        assert registry is not None  # checked by ``enabled``
        answer: HotAnswer | HotRefusal | None
        try:
            answer = answerer(registry, request)
        except MoorageError as exc:  # a pull of something missing: push clients ask first
            response = domain_error_response(exc, scope["path"], request.params)
            answer = HotRefusal(response) if response.status_code < 500 else None
        except Exception:
            return None
        if answer is not None:
            scope["route"] = route  # the metrics label, as the router would have set it
        return answer


def _hot_request(scope: Scope, child_scope: Scope) -> HotRequest:
    authorization: str | None = None
    accept: list[str] = []
    unusual: set[bytes] = set()
    for key, value in scope["headers"]:
        if key == b"authorization" and authorization is None:  # the first, as Starlette reads
            authorization = value.decode("latin-1")
        elif key == b"accept":
            accept.append(value.decode("latin-1"))
        elif key in _UNUSUAL:
            unusual.add(key)
    return HotRequest(
        scope["method"], child_scope["path_params"], authorization, accept, frozenset(unusual)
    )
