"""The OpenAPI 3.1 document of the REST API, built from the route table: every ``/api/``
route with its declared operation (``operation.py``), models from pydantic."""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache
from importlib.metadata import version
from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from moorage.http.api.models import Error
from moorage.http.api.operation import PATH_PARAMETERS, operation_of

_PARAM = re.compile(r"{(\w+)(?::\w+)?}")
_REASONS = {
    200: "OK",
    201: "Created",
    204: "No content",
    400: "Invalid request (the field at fault is named)",
    401: "Credentials needed",
    403: "Not allowed",
    404: "Not found (or not visible to the caller)",
    409: "Changed meanwhile (compare-and-set lost)",
}


def build_document(routes: Iterable[Any]) -> dict[str, Any]:
    """``routes``: the route table's specs (method, path, endpoint)."""
    schemas: dict[str, Any] = {}
    paths: dict[str, dict[str, Any]] = {}

    def ref(model: type[BaseModel]) -> dict[str, str]:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, definition in schema.pop("$defs", {}).items():
            schemas[name] = definition
        schemas[model.__name__] = schema
        return {"$ref": f"#/components/schemas/{model.__name__}"}

    error = {"application/json": {"schema": ref(Error)}}
    for spec in routes:
        op = operation_of(spec.endpoint)
        if op is None:
            continue
        path = _PARAM.sub(r"{\1}", spec.path)
        parameters: list[dict[str, Any]] = [
            {"name": name, "in": "path", "required": True, "schema": PATH_PARAMETERS[name]}
            for name in _PARAM.findall(spec.path)
        ]
        parameters += [
            {
                "name": q.name,
                "in": "query",
                "required": False,
                "schema": q.schema,
                "description": q.description,
            }
            for q in op.query
        ]
        success: dict[str, Any] = {"description": _REASONS.get(op.status, "OK")}
        if op.response is not None:
            success["content"] = {"application/json": {"schema": ref(op.response)}}
        responses: dict[str, Any] = {str(op.status): success}
        for status in op.errors:
            responses[str(status)] = {"description": _REASONS[status], "content": error}
        entry: dict[str, Any] = {
            "operationId": spec.name,
            "summary": op.summary,
            "parameters": parameters,
            "responses": responses,
        }
        if op.body is not None:
            entry["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": ref(op.body)}},
            }
        paths.setdefault(path, {})[spec.method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {"title": "Moorage REST API", "version": version("moorage")},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "basic": {"type": "http", "scheme": "basic"},
                "bearer": {"type": "http", "scheme": "bearer"},
            },
        },
        "security": [{}, {"basic": []}, {"bearer": []}],
    }


@cache
def _document() -> dict[str, Any]:
    # The route table imports this module's endpoint: read it when first asked, not at import.
    from moorage.http.routes import ROUTES

    return build_document(ROUTES)


async def document(_request: Request) -> Response:
    return JSONResponse(_document())
