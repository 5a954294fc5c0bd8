"""The one mapping from errors to HTTP: domain error → (status, OCI error code), one writer.

Error bodies follow the distribution-spec format: ``{"errors": [{"code", "message", "detail"}]}``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from moorage.domain import errors as domain
from moorage.domain.echo import ECHO_LIMIT
from moorage.domain.manifests import ManifestUnverifiedError
from moorage.http.access import AuthenticationRequiredError
from moorage.observability import get_logger

log = get_logger(__name__)


class ErrorCode(StrEnum):
    BLOB_UNKNOWN = "BLOB_UNKNOWN"
    BLOB_UPLOAD_INVALID = "BLOB_UPLOAD_INVALID"
    BLOB_UPLOAD_UNKNOWN = "BLOB_UPLOAD_UNKNOWN"
    DIGEST_INVALID = "DIGEST_INVALID"
    MANIFEST_BLOB_UNKNOWN = "MANIFEST_BLOB_UNKNOWN"
    MANIFEST_INVALID = "MANIFEST_INVALID"
    MANIFEST_UNKNOWN = "MANIFEST_UNKNOWN"
    NAME_INVALID = "NAME_INVALID"
    NAME_UNKNOWN = "NAME_UNKNOWN"
    SIZE_INVALID = "SIZE_INVALID"
    UNAUTHORIZED = "UNAUTHORIZED"
    DENIED = "DENIED"
    UNSUPPORTED = "UNSUPPORTED"
    TOOMANYREQUESTS = "TOOMANYREQUESTS"
    MANIFEST_UNVERIFIED = "MANIFEST_UNVERIFIED"
    TAG_INVALID = "TAG_INVALID"
    PAGINATION_NUMBER_INVALID = "PAGINATION_NUMBER_INVALID"
    RANGE_INVALID = "RANGE_INVALID"
    NOT_FOUND = "NOT_FOUND"  # no route matches the path
    INVALID_REQUEST = "INVALID_REQUEST"  # Quay's code for refused REST API input
    CONFLICT = "CONFLICT"  # a REST API compare-and-set lost
    UNKNOWN = "UNKNOWN"
    UNAVAILABLE = "UNAVAILABLE"


# Domain errors, most specific first; lookup walks the exception's MRO.
DOMAIN_ERRORS: Mapping[type[domain.MoorageError], tuple[int, ErrorCode]] = {
    domain.InvalidRequestError: (400, ErrorCode.INVALID_REQUEST),
    domain.NotFoundError: (404, ErrorCode.NOT_FOUND),
    domain.ConflictError: (409, ErrorCode.CONFLICT),
    domain.InvalidDigestError: (400, ErrorCode.DIGEST_INVALID),
    domain.InvalidNameError: (400, ErrorCode.NAME_INVALID),
    domain.RepositoryNotFoundError: (404, ErrorCode.NAME_UNKNOWN),
    domain.AccessDeniedError: (403, ErrorCode.DENIED),
    domain.OperationUnsupportedError: (405, ErrorCode.UNSUPPORTED),
    domain.BlobNotFoundError: (404, ErrorCode.BLOB_UNKNOWN),
    domain.UploadNotFoundError: (404, ErrorCode.BLOB_UPLOAD_UNKNOWN),
    domain.UploadInvalidError: (400, ErrorCode.BLOB_UPLOAD_INVALID),
    domain.UploadRangeError: (416, ErrorCode.RANGE_INVALID),
    domain.TooManyRequestsError: (429, ErrorCode.TOOMANYREQUESTS),
    domain.RequestBodyError: (400, ErrorCode.BLOB_UPLOAD_INVALID),
    domain.SizeInvalidError: (400, ErrorCode.SIZE_INVALID),
    domain.ManifestNotFoundError: (404, ErrorCode.MANIFEST_UNKNOWN),
    domain.ManifestTooLargeError: (413, ErrorCode.MANIFEST_INVALID),
    domain.ManifestMediaTypeError: (415, ErrorCode.MANIFEST_INVALID),
    ManifestUnverifiedError: (400, ErrorCode.MANIFEST_UNVERIFIED),
    domain.TagInvalidError: (400, ErrorCode.TAG_INVALID),
    domain.PaginationInvalidError: (400, ErrorCode.PAGINATION_NUMBER_INVALID),
    domain.BlobUnknownError: (400, ErrorCode.MANIFEST_BLOB_UNKNOWN),
    domain.ManifestUnknownError: (400, ErrorCode.MANIFEST_BLOB_UNKNOWN),
    domain.ManifestError: (400, ErrorCode.MANIFEST_INVALID),
    # Misconfiguration or programming errors, not the client's fault.
    domain.UnknownLocationError: (500, ErrorCode.UNKNOWN),
    domain.UnknownSignerError: (500, ErrorCode.UNKNOWN),
    domain.DataModelError: (400, ErrorCode.INVALID_REQUEST),
    domain.MoorageError: (500, ErrorCode.UNKNOWN),
}

_HTTP_STATUS_CODES: Mapping[int, ErrorCode] = {
    401: ErrorCode.UNAUTHORIZED,
    403: ErrorCode.DENIED,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.UNSUPPORTED,
    416: ErrorCode.RANGE_INVALID,
    429: ErrorCode.TOOMANYREQUESTS,
    503: ErrorCode.UNAVAILABLE,
}


class RegistryError(Exception):
    """An error raised by endpoints that has no domain equivalent (e.g. NAME_UNKNOWN)."""

    def __init__(self, status: int, code: ErrorCode, message: str, detail: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.detail = detail


def error_response(
    status: int,
    code: ErrorCode,
    message: str,
    detail: Any = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    entry: dict[str, Any] = {"code": code.value, "message": _concise(message)}
    if detail is not None:
        entry["detail"] = detail
    return _ErrorBody({"errors": [entry]}, status_code=status, headers=headers)


MESSAGE_LIMIT = 200  # characters; the sources already quote client input at most ~100

API_PREFIX = "/api/"
# The REST API's error bodies follow Quay's shape (status, error_type, title, detail,
# error_message); the error type is a stable word per status.
API_ERROR_TYPES: Mapping[int, str] = {
    400: "invalid_request",
    401: "invalid_token",
    403: "insufficient_scope",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    409: "conflict",
    413: "request_too_large",
    415: "unsupported_media_type",
    416: "invalid_request",
    429: "too_many_requests",
}


def api_error_response(
    status: int, message: str, field: str | None = None, headers: Mapping[str, str] | None = None
) -> Response:
    error_type = API_ERROR_TYPES.get(status, "server_error")
    text = _concise(message)
    body: dict[str, Any] = {
        "status": status,
        "error_type": error_type,
        "title": error_type,
        "detail": text,
        "error_message": text,
    }
    if field is not None:
        body["field"] = field[:ECHO_LIMIT]
    return _ErrorBody(body, status_code=status, headers=headers)


def respond(
    path: str,
    status: int,
    code: ErrorCode,
    message: str,
    detail: Any = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """The error in the format of the API the path addressed (by path alone: the hot layer
    answers without a Request)."""
    if path.startswith(API_PREFIX):
        field = getattr(detail, "get", lambda _key: None)("field")
        return api_error_response(status, message, field, headers)
    return error_response(status, code, message, detail, headers)


def _concise(message: str) -> str:
    """The last guard against a message that reflects a client's kilobytes."""
    return message if len(message) <= MESSAGE_LIMIT else message[: MESSAGE_LIMIT - 1] + "…"


class _ErrorBody(JSONResponse):
    """Rendered as ASCII JSON: a message quoting a lone surrogate (``"\\ud800"`` in a
    client's JSON) must still be sendable, and UTF-8 cannot encode one."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, separators=(",", ":")).encode("ascii")


def classify(exc: domain.MoorageError) -> tuple[int, ErrorCode]:
    for cls in type(exc).__mro__:
        if cls in DOMAIN_ERRORS:
            return DOMAIN_ERRORS[cls]
    return 500, ErrorCode.UNKNOWN


async def handle_registry_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RegistryError)
    return respond(request.url.path, exc.status, exc.code, exc.message, exc.detail)


def _extra_headers(
    path_params: Mapping[str, str], exc: domain.MoorageError
) -> dict[str, str] | None:
    if isinstance(exc, domain.TooManyRequestsError):
        return {"Retry-After": str(exc.retry_after_s)}
    if isinstance(exc, domain.RequestBodyError):
        return {"Connection": "close"}  # the rest of the body is not worth reading
    if isinstance(exc, domain.UploadRangeError):
        # Tell the client where the session stands so it can resume (protocol.md §5.3).
        name = path_params.get("name", "")
        return {
            "Location": f"/v2/{name}/blobs/uploads/{exc.upload_id}",
            "Range": f"0-{max(exc.size - 1, 0)}",
            "Docker-Upload-UUID": exc.upload_id,
        }
    return None


async def handle_domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, domain.MoorageError)
    return domain_error_response(exc, request.url.path, request.path_params)


def domain_error_response(
    exc: domain.MoorageError, path: str, path_params: Mapping[str, str]
) -> Response:
    """The answer to a domain error raised while serving ``path`` (``path_params``: the
    route's parameters), in the format of the API the path belongs to."""
    status, code = classify(exc)
    if isinstance(exc, domain.RequestBodyError) and exc.timed_out:
        status = 408
    if isinstance(exc, domain.RequestBodyError) and "reference" in path_params:
        code = ErrorCode.MANIFEST_INVALID  # a manifest PUT's body, not an upload's
    if status >= 500:
        log.error("unexpected domain error", exc_info=exc)
        return respond(path, status, code, "internal server error")
    digest = getattr(exc, "digest", None)
    field = getattr(exc, "field", None)
    detail = (
        {"digest": digest[:ECHO_LIMIT]}
        if isinstance(digest, str)
        else {"field": field}
        if isinstance(field, str)
        else None
    )
    return respond(path, status, code, str(exc), detail, _extra_headers(path_params, exc))


async def handle_authentication_required(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AuthenticationRequiredError)
    headers = {"WWW-Authenticate": exc.challenge}
    return respond(request.url.path, 401, ErrorCode.UNAUTHORIZED, str(exc), headers=headers)


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_STATUS_CODES.get(exc.status_code, ErrorCode.UNKNOWN)
    message = "route not found" if exc.status_code == 404 else str(exc.detail).lower()
    return respond(request.url.path, exc.status_code, code, message, headers=exc.headers)


async def handle_unexpected(request: Request, _exc: Exception) -> Response:
    # The request middleware logs the traceback once, with the request id.
    return respond(request.url.path, 500, ErrorCode.UNKNOWN, "internal server error")


EXCEPTION_HANDLERS = {
    AuthenticationRequiredError: handle_authentication_required,
    RegistryError: handle_registry_error,
    domain.MoorageError: handle_domain_error,
    HTTPException: handle_http_exception,
    Exception: handle_unexpected,
}
