"""What each REST API endpoint declares about itself: the one source of its OpenAPI entry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel

E = TypeVar("E", bound=Callable[..., Any])
_ATTRIBUTE = "__api_operation__"


@dataclass(frozen=True, slots=True)
class QueryParam:
    name: str
    schema: dict[str, Any]
    description: str


@dataclass(frozen=True, slots=True)
class ApiOperation:
    """``response`` None: no body (``status`` is then 204). ``errors``: the statuses it may
    answer besides success (401 and 404 come with every repository route)."""

    summary: str
    status: int = 200
    response: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    query: tuple[QueryParam, ...] = ()
    errors: tuple[int, ...] = field(default=(400, 401, 403, 404))


def operation(spec: ApiOperation) -> Callable[[E], E]:
    def mark(endpoint: E) -> E:
        setattr(endpoint, _ATTRIBUTE, spec)
        return endpoint

    return mark


def operation_of(endpoint: object) -> ApiOperation | None:
    found = getattr(endpoint, _ATTRIBUTE, None)
    return found if isinstance(found, ApiOperation) else None


PAGE = QueryParam(
    "page", {"type": "integer", "minimum": 1, "maximum": 1_000_000}, "page number, from 1"
)
LIMIT = QueryParam("limit", {"type": "integer", "minimum": 1, "maximum": 100}, "page size")


# The grammar of each path parameter (what the endpoints accept; anything else is a 400 or
# a route that does not match).
NAMESPACE_NAME = r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$"
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
REPOSITORY_NAME = rf"^{_COMPONENT}(?:/{_COMPONENT})*$"
TAG_NAME = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"
DIGEST = r"^(?:sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$"
PATH_PARAMETERS: dict[str, dict[str, Any]] = {
    "namespace": {"type": "string", "pattern": NAMESPACE_NAME, "minLength": 2, "maxLength": 100},
    "repository": {"type": "string", "pattern": REPOSITORY_NAME, "maxLength": 150},
    "tag": {"type": "string", "pattern": TAG_NAME},
    "digest": {"type": "string", "pattern": DIGEST},
    "label_id": {"type": "string", "format": "uuid"},
}
PAGE_TOKEN = r"^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2,3})?$"  # noqa: S105 - a pattern
