"""``/api/v1/superuser/namespaces``: superusers switch namespaces on and off."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from moorage.domain.errors import NotFoundError
from moorage.http.api import models
from moorage.http.api.common import admin, body, ok
from moorage.http.api.operation import ApiOperation, operation
from moorage.services.accounts import UnknownAccountError


@operation(
    ApiOperation(
        "Enable or disable a namespace (a disabled one refuses every pull and push)",
        response=models.Namespace,
        body=models.SetNamespaceEnabled,
    )
)
async def set_namespace_enabled(request: Request) -> Response:
    wanted = await body(request, models.SetNamespaceEnabled)
    name = request.path_params["namespace"]
    try:
        await run_in_threadpool(admin(request).accounts.set_namespace_enabled, name, wanted.enabled)
    except UnknownAccountError:
        raise NotFoundError(f"no namespace {name[:100]}") from None
    return ok(models.Namespace(name=name, enabled=wanted.enabled))
