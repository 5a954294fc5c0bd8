"""``/api/v1/repository``: create, list, describe, change visibility or state, delete."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from moorage.domain.access import Action, repository_scope
from moorage.domain.errors import AccessDeniedError
from moorage.domain.records import RepositoryReference, RepositoryState, Visibility
from moorage.http.access import caller_of, permits
from moorage.http.api import models
from moorage.http.api.common import (
    admin,
    body,
    no_content,
    ok,
    query_bool,
    query_int,
    query_text,
    repository,
)
from moorage.http.api.operation import LIMIT, PAGE_TOKEN, ApiOperation, QueryParam, operation
from moorage.http.context import get_context


@operation(
    ApiOperation(
        "Create a repository (and the caller's user namespace if need be)",
        status=201,
        response=models.Repository,
        body=models.CreateRepository,
        errors=(400, 401, 403, 409),
    )
)
async def create_repository(request: Request) -> Response:
    wanted = await body(request, models.CreateRepository)
    full_name = f"{wanted.namespace}/{wanted.repository}"
    caller = caller_of(request)
    if not await permits(request, repository_scope(full_name, Action.PUSH)):
        raise AccessDeniedError(f"you may not create repositories in {wanted.namespace[:100]}")
    authorizer = get_context(request).authorizer
    on_created = None
    if authorizer is not None and not caller.open:

        def on_created(created: RepositoryReference) -> None:
            authorizer.repository_created(caller.principal, created)

    view = await run_in_threadpool(
        admin(request).repositories.create, full_name, Visibility(wanted.visibility), on_created
    )
    return ok(models.Repository.of(view), 201)


@operation(
    ApiOperation(
        "List the repositories the caller may read",
        response=models.RepositoryList,
        query=(
            QueryParam("namespace", {"type": "string"}, "only this namespace's"),
            QueryParam("public", {"type": "boolean"}, "only public ones"),
            QueryParam("filter", {"type": "string"}, "names containing this"),
            LIMIT,
            QueryParam(
                "next_page",
                {"type": "string", "pattern": PAGE_TOKEN, "maxLength": 1024},
                "the token of the previous page",
            ),
        ),
        errors=(400, 401),
    )
)
async def list_repositories(request: Request) -> Response:
    caller = caller_of(request)
    page = await run_in_threadpool(
        admin(request).repositories.page,
        caller.principal,
        everything=caller.open,
        namespace=query_text(request, "namespace"),
        public_only=query_bool(request, "public"),
        name_filter=query_text(request, "filter"),
        limit=query_int(request, "limit", 100, limit=100),
        next_page=query_text(request, "next_page", max_length=1024),
    )
    return ok(
        models.RepositoryList(
            repositories=[models.Repository.of(view) for view in page.repositories],
            next_page=page.next_page,
        )
    )


@operation(ApiOperation("A repository: tags, size, visibility, state", response=models.Repository))
async def get_repository(request: Request) -> Response:
    found = await repository(request)
    view = await run_in_threadpool(admin(request).repositories.view, found)
    return ok(models.Repository.of(view))


@operation(
    ApiOperation(
        "Make a repository public or private",
        response=models.Repository,
        body=models.ChangeVisibility,
    )
)
async def change_visibility(request: Request) -> Response:
    wanted = await body(request, models.ChangeVisibility)
    found = await repository(request)
    services = admin(request).repositories
    await run_in_threadpool(services.set_visibility, found, Visibility(wanted.visibility))
    view = await run_in_threadpool(services.view, await repository(request))
    return ok(models.Repository.of(view))


@operation(
    ApiOperation(
        "Make a repository read-only, or writable again",
        response=models.Repository,
        body=models.ChangeState,
    )
)
async def change_state(request: Request) -> Response:
    wanted = await body(request, models.ChangeState)
    found = await repository(request)
    services = admin(request).repositories
    await run_in_threadpool(services.set_state, found, RepositoryState[wanted.state])
    view = await run_in_threadpool(services.view, await repository(request))
    return ok(models.Repository.of(view))


@operation(ApiOperation("Delete a repository (its content is left to garbage collection)", 204))
async def delete_repository(request: Request) -> Response:
    found = await repository(request)
    await run_in_threadpool(admin(request).repositories.delete, found)
    return no_content()
