"""Tags, manifests and labels of a repository: ``/api/v1/repository/{ns}/{repo}/tag/...``
and ``.../manifest/{digest}...``, thin over ``services.tag_admin``."""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from moorage.domain.errors import InvalidRequestError
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
    sees_placements,
)
from moorage.http.api.operation import LIMIT, PAGE, ApiOperation, QueryParam, operation
from moorage.services.repositories import Resolution


@operation(
    ApiOperation(
        "Tag versions, newest first: alive ones and those in the time machine",
        response=models.TagList,
        query=(
            PAGE,
            LIMIT,
            QueryParam("specificTag", {"type": "string"}, "only this tag's versions"),
            QueryParam("onlyActiveTags", {"type": "boolean"}, "only alive tags"),
        ),
    )
)
async def list_tags(request: Request) -> Response:
    found = await repository(request)
    page = await run_in_threadpool(
        admin(request).tags.history,
        found,
        page=query_int(request, "page", 1, limit=1_000_000),
        limit=query_int(request, "limit", 50, limit=100),
        tag=query_text(request, "specificTag", max_length=128),
        active_only=query_bool(request, "onlyActiveTags"),
    )
    return ok(
        models.TagList(
            tags=[models.TagOut.of(tag) for tag in page.tags],
            page=page.page,
            has_additional=page.has_additional,
        )
    )


@operation(
    ApiOperation(
        "Point a tag at a manifest (compare-and-set with expected_manifest_digest) and/or "
        "set when it expires",
        status=201,
        response=models.TagOut,
        body=models.ChangeTag,
        errors=(400, 401, 403, 404, 409),
    )
)
async def change_tag(request: Request) -> Response:
    wanted = await body(request, models.ChangeTag)
    found = await repository(request, Resolution.WRITE)
    tags = admin(request).tags
    name = request.path_params["tag"]
    tag = None
    if wanted.manifest_digest is not None:
        tag = await run_in_threadpool(
            tags.move,
            found,
            name,
            wanted.manifest_digest,
            expected_digest=wanted.expected_manifest_digest,
        )
    if "expiration" in wanted.model_fields_set:
        moment = (
            None if wanted.expiration is None else datetime.fromtimestamp(wanted.expiration, UTC)
        )
        tag = await run_in_threadpool(tags.set_expiration, found, name, moment)
    if tag is None:
        raise InvalidRequestError("give manifest_digest, expiration or both", "body")
    return ok(models.TagOut.of(tag), 201)


@operation(ApiOperation("Delete a tag (its history keeps it, for restores)", 204))
async def delete_tag(request: Request) -> Response:
    found = await repository(request, Resolution.WRITE)
    await run_in_threadpool(admin(request).tags.delete, found, request.path_params["tag"])
    return no_content()


@operation(
    ApiOperation(
        "Put a tag back on a manifest from its history (the time machine)",
        response=models.TagOut,
        body=models.RestoreTag,
    )
)
async def restore_tag(request: Request) -> Response:
    wanted = await body(request, models.RestoreTag)
    found = await repository(request, Resolution.WRITE)
    tag = await run_in_threadpool(
        admin(request).tags.restore, found, request.path_params["tag"], wanted.manifest_digest
    )
    return ok(models.TagOut.of(tag))


@operation(
    ApiOperation(
        "The tag's V1 image chain (schema 1-era images), leaf first",
        response=models.ImageList,
        query=(QueryParam("owned", {"type": "boolean"}, "only images no other tag uses"),),
    )
)
async def tag_images(request: Request) -> Response:
    found = await repository(request)
    images = await run_in_threadpool(
        admin(request).tags.images,
        found,
        request.path_params["tag"],
        owned=query_bool(request, "owned"),
    )
    return ok(models.ImageList(images=models.ImageOut.chain(images)))


@operation(
    ApiOperation("A manifest by digest, with its layers in order", response=models.ManifestOut)
)
async def get_manifest(request: Request) -> Response:
    found = await repository(request)
    placements = sees_placements(request)
    view = await run_in_threadpool(
        admin(request).tags.manifest_view,
        found,
        request.path_params["digest"],
        include_placements=placements,
    )
    return ok(models.ManifestOut.of(view, placements))


@operation(
    ApiOperation(
        "A manifest's security scan status (queued or unsupported until a scanner runs)",
        response=models.SecurityStatus,
    )
)
async def manifest_security(request: Request) -> Response:
    found = await repository(request)
    status = await run_in_threadpool(
        admin(request).tags.security_status, found, request.path_params["digest"]
    )
    return ok(models.SecurityStatus(status=status.value))


@operation(
    ApiOperation(
        "A manifest's labels",
        response=models.LabelList,
        query=(QueryParam("filter", {"type": "string"}, "keys starting with this"),),
    )
)
async def list_labels(request: Request) -> Response:
    found = await repository(request)
    labels = await run_in_threadpool(
        admin(request).tags.labels,
        found,
        request.path_params["digest"],
        query_text(request, "filter"),
    )
    return ok(models.LabelList(labels=[models.LabelOut.of(label) for label in labels]))


@operation(
    ApiOperation(
        "Add a label to a manifest", status=201, response=models.LabelOut, body=models.AddLabel
    )
)
async def add_label(request: Request) -> Response:
    wanted = await body(request, models.AddLabel)
    found = await repository(request, Resolution.WRITE)
    label = await run_in_threadpool(
        admin(request).tags.add_label,
        found,
        request.path_params["digest"],
        wanted.key,
        wanted.value,
        wanted.media_type,
    )
    response = ok(models.LabelOut.of(label), 201)
    response.headers["Location"] = f"{request.url.path.rstrip('/')}/{label.uuid}"
    return response


@operation(ApiOperation("One label of a manifest", response=models.LabelOut))
async def get_label(request: Request) -> Response:
    found = await repository(request)
    params = request.path_params
    label = await run_in_threadpool(
        admin(request).tags.label, found, params["digest"], params["label_id"]
    )
    return ok(models.LabelOut.of(label))


@operation(ApiOperation("Delete a label added through the API (manifest labels stay)", 204))
async def delete_label(request: Request) -> Response:
    found = await repository(request, Resolution.WRITE)
    params = request.path_params
    await run_in_threadpool(
        admin(request).tags.delete_label, found, params["digest"], params["label_id"]
    )
    return no_content()
