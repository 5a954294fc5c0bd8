"""The route table: every HTTP route with its method, path, endpoint and required access.

The seam (``http/access.py``) admits every caller for its route's ``access`` before the
endpoint runs, and the access also decides how the route resolves its repository; read-only
mode drops the routes that write.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from moorage.http import squash as squash_verbs
from moorage.http import system, torrents
from moorage.http.access import Access, guarded
from moorage.http.api import namespaces, openapi, repositories, tags
from moorage.http.auth import token
from moorage.http.v2 import base, blobs, listing, manifests, uploads

Endpoint = Callable[[Request], Awaitable[Response]] | Callable[[Request], Response]


@dataclass(frozen=True, slots=True)
class RouteSpec:
    method: str
    path: str
    endpoint: Endpoint
    access: Access
    name: str


_MANIFEST = "/v2/{name:path}/manifests/{reference}"
_UPLOADS = "/v2/{name:path}/blobs/uploads/"
_UPLOAD = "/v2/{name:path}/blobs/uploads/{upload_id}"
_BLOB = "/v2/{name:path}/blobs/{digest}"
_TORRENT = "/c1/torrent/{name:path}/blobs/{digest}"
_WEB_SEED = "/c1/webseed/{name:path}/blobs/{digest}"
# Squashed images: <reference> is the last segment (a tag or digest never holds a "/").
_SQUASH = "/c1/squash/{name:path}/{reference}"
_SQUASH_SIGNATURE = "/c1/squash-signature/{name:path}/{reference}"
_REPO = "/api/v1/repository/{namespace}/{repository:path}"
_TAG = _REPO + "/tag/{tag}"
_API_MANIFEST = _REPO + "/manifest/{digest}"
_LABELS = _API_MANIFEST + "/labels"

ROUTES: tuple[RouteSpec, ...] = (
    RouteSpec("GET", "/v2/", base.api_check, Access.LOGIN, "v2.base"),
    # Some clients ping without the trailing slash; answer rather than redirect.
    RouteSpec("GET", "/v2", base.api_check, Access.LOGIN, "v2.base.no_slash"),
    RouteSpec("GET", "/healthz", system.healthz, Access.NONE, "healthz"),
    RouteSpec(
        "GET", "/healthz/storage", system.storage_usage, Access.API_SUPERUSER, "healthz.storage"
    ),
    RouteSpec("GET", "/metrics", system.metrics, Access.NONE, "metrics"),
    # The token endpoint (the challenges' realm); it checks credentials itself.
    RouteSpec("GET", "/v2/auth", token.token_get, Access.NONE, "auth.token"),
    RouteSpec("POST", "/v2/auth", token.token_post, Access.NONE, "auth.token.post"),
    RouteSpec("GET", "/v2/_catalog", listing.catalog, Access.CATALOG, "v2.catalog"),
    # <name> may hold slashes: the fixed segment after it decides the route, so the more
    # specific patterns (tags, manifests, uploads) come before blobs/<digest>.
    RouteSpec("GET", "/v2/{name:path}/tags/list", listing.list_tags, Access.PULL, "v2.tags"),
    RouteSpec("GET", _MANIFEST, manifests.get_manifest, Access.PULL, "v2.manifest"),
    RouteSpec("PUT", _MANIFEST, manifests.put_manifest, Access.CREATE, "v2.manifest.put"),
    RouteSpec("DELETE", _MANIFEST, manifests.delete_manifest, Access.DELETE, "v2.manifest.delete"),
    RouteSpec("POST", _UPLOADS, uploads.start_upload, Access.CREATE, "v2.upload.start"),
    RouteSpec("POST", _UPLOADS[:-1], uploads.start_upload, Access.CREATE, "v2.upload.start_"),
    RouteSpec("GET", _UPLOAD, uploads.upload_status, Access.PUSH, "v2.upload.status"),
    RouteSpec("PATCH", _UPLOAD, uploads.patch_upload, Access.PUSH, "v2.upload.patch"),
    RouteSpec("PUT", _UPLOAD, uploads.finish_upload, Access.PUSH, "v2.upload.finish"),
    # Cancelling takes push, not delete: skopeo cancels the sessions failed mounts open.
    RouteSpec("DELETE", _UPLOAD, uploads.cancel_upload, Access.PUSH, "v2.upload.cancel"),
    RouteSpec("GET", _BLOB, blobs.get_blob, Access.PULL, "v2.blob"),
    RouteSpec("DELETE", _BLOB, blobs.delete_blob, Access.DELETE, "v2.blob.delete"),
    RouteSpec(
        "GET", "/v2/{name:path}/referrers/{digest}", listing.referrers, Access.PULL, "v2.referrers"
    ),
    # Torrents (Quay's verb path): <name> is the whole repository name, ended by the last
    # "/blobs/" (the digest holds no slash); the web seed is the blob GET behind a signed URL.
    RouteSpec("GET", _TORRENT, torrents.get_torrent, Access.PULL, "c1.torrent"),
    RouteSpec("GET", _WEB_SEED, blobs.get_blob, Access.WEB_SEED, "c1.webseed"),
    # Squashed images (docs/derived-images.md): built on first request, then from storage.
    RouteSpec("GET", _SQUASH, squash_verbs.get_squashed, Access.PULL, "c1.squash"),
    RouteSpec(
        "GET", _SQUASH_SIGNATURE, squash_verbs.get_signature, Access.PULL, "c1.squash.signature"
    ),
    RouteSpec(
        "GET", "/c1/keys/squash.asc", squash_verbs.get_public_key, Access.NONE, "c1.squash.key"
    ),
    # The REST API (Quay's paths). {repository:path} may hold slashes: the fixed segments
    # after it decide the route, so the longer patterns come first.
    RouteSpec("GET", "/api/v1/openapi.json", openapi.document, Access.NONE, "api.openapi"),
    RouteSpec(
        "POST",
        "/api/v1/repository",
        repositories.create_repository,
        Access.API_CREATE,
        "api.repository.create",
    ),
    RouteSpec(
        "GET",
        "/api/v1/repository",
        repositories.list_repositories,
        Access.API_LIST,
        "api.repository.list",
    ),
    RouteSpec("POST", _TAG + "/restore", tags.restore_tag, Access.API_WRITE, "api.tag.restore"),
    RouteSpec("GET", _TAG + "/images", tags.tag_images, Access.API_READ, "api.tag.images"),
    RouteSpec("PUT", _TAG, tags.change_tag, Access.API_WRITE, "api.tag.change"),
    RouteSpec("DELETE", _TAG, tags.delete_tag, Access.API_WRITE, "api.tag.delete"),
    RouteSpec("GET", _REPO + "/tag/", tags.list_tags, Access.API_READ, "api.tag.list"),
    RouteSpec("GET", _LABELS + "/{label_id}", tags.get_label, Access.API_READ, "api.label"),
    RouteSpec(
        "DELETE", _LABELS + "/{label_id}", tags.delete_label, Access.API_WRITE, "api.label.delete"
    ),
    RouteSpec("GET", _LABELS, tags.list_labels, Access.API_READ, "api.label.list"),
    RouteSpec("POST", _LABELS, tags.add_label, Access.API_WRITE, "api.label.add"),
    RouteSpec(
        "GET",
        _API_MANIFEST + "/security",
        tags.manifest_security,
        Access.API_READ,
        "api.manifest.security",
    ),
    RouteSpec("GET", _API_MANIFEST, tags.get_manifest, Access.API_READ, "api.manifest"),
    RouteSpec(
        "POST",
        _REPO + "/changevisibility",
        repositories.change_visibility,
        Access.API_ADMIN,
        "api.repository.visibility",
    ),
    RouteSpec(
        "PUT",
        _REPO + "/changestate",
        repositories.change_state,
        Access.API_ADMIN,
        "api.repository.state",
    ),
    RouteSpec("GET", _REPO, repositories.get_repository, Access.API_READ, "api.repository"),
    RouteSpec(
        "DELETE",
        _REPO,
        repositories.delete_repository,
        Access.API_ADMIN,
        "api.repository.delete",
    ),
    RouteSpec(
        "PUT",
        "/api/v1/superuser/namespaces/{namespace}",
        namespaces.set_namespace_enabled,
        Access.API_SUPERUSER,
        "api.namespace.enabled",
    ),
)


def starlette_routes(specs: Iterable[RouteSpec], *, read_only: bool) -> list[Route]:
    """Starlette routes for the table; GET routes answer HEAD as well."""
    return [
        Route(
            spec.path,
            spec.endpoint if spec.access is Access.NONE else guarded(spec.endpoint, spec.access),
            methods=[spec.method],
            name=spec.name,
        )
        for spec in specs
        if not (read_only and spec.access.writes)
    ]
