"""Shared pieces of the REST API endpoints: services, the repository, bodies, parameters."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from moorage.domain.errors import InvalidRequestError, OperationUnsupportedError
from moorage.domain.records import RepositoryReference
from moorage.http.access import api_repository_name, caller_of
from moorage.http.context import get_context
from moorage.http.inputs import parse_uint
from moorage.services.registry import AdminServices
from moorage.services.repositories import Resolution

M = TypeVar("M", bound=BaseModel)
MAX_BODY = 1 << 16  # REST API bodies are small JSON documents


def admin(request: Request) -> AdminServices:
    services = get_context(request).admin
    if services is None:
        raise OperationUnsupportedError("the REST API is not configured")
    return services


async def repository(
    request: Request, resolution: Resolution = Resolution.READ
) -> RepositoryReference:
    """The path's repository (``WRITE``: one that is not read-only)."""
    resolver = admin(request).resolver
    return await run_in_threadpool(resolver.resolve, api_repository_name(request), resolution)


async def body(request: Request, model: type[M]) -> M:
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            raise InvalidRequestError(f"the body is larger than {MAX_BODY} bytes", "body")
    try:
        return model.model_validate_json(bytes(raw) or b"{}")
    except ValidationError as invalid:
        first = invalid.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise InvalidRequestError(f"{where}: {first['msg']}", where) from None


def query_int(request: Request, name: str, default: int, *, limit: int) -> int:
    text = request.query_params.get(name)
    if text is None:
        return default
    value = parse_uint(text, limit=limit)
    if value is None or value < 1:
        raise InvalidRequestError(f"{name} is a whole number from 1 to {limit}", name)
    return value


def query_bool(request: Request, name: str) -> bool:
    text = request.query_params.get(name, "false").lower()
    if text not in ("true", "false", "1", "0"):
        raise InvalidRequestError(f"{name} is true or false", name)
    return text in ("true", "1")


def query_text(request: Request, name: str, *, max_length: int = 255) -> str | None:
    text = request.query_params.get(name)
    if text is not None and len(text) > max_length:
        raise InvalidRequestError(f"{name} is at most {max_length} characters", name)
    return text or None


def ok(model: BaseModel, status: int = 200) -> Response:
    return JSONResponse(model.model_dump(mode="json"), status_code=status)


def no_content() -> Response:
    return Response(status_code=204)


def sees_placements(request: Request) -> bool:
    """Storage placements are shown to superusers only (or anyone while the registry runs
    open)."""
    caller = caller_of(request)
    return caller.open or caller.principal.superuser
