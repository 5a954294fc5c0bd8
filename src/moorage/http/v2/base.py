"""``GET /v2/``: the API version check every client sends first."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response


async def api_check(_request: Request) -> Response:
    # The Docker-Distribution-API-Version header is added to every /v2 response by middleware.
    return JSONResponse({})
