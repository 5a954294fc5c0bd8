"""The token endpoint (protocol.md §3.3-3.4): ``GET`` with Basic credentials or anonymous,
``POST`` with an OAuth2 form (``password`` and ``refresh_token`` grants).

Answers carry ``Cache-Control: no-store``; wrong credentials are a 401 ``UNAUTHORIZED``, never
an anonymous token; requested actions the caller lacks are silently dropped. No secret the
client sent is ever echoed or logged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from moorage.domain.access import (
    ANONYMOUS,
    Principal,
    ResourceScope,
    ScopeSyntaxError,
    parse_scopes,
)
from moorage.http.auth.challenges import basic_challenge
from moorage.http.auth.credentials import (
    MalformedCredentialsError,
    basic_credentials,
    client_address,
)
from moorage.http.context import get_context
from moorage.http.errors import ErrorCode, error_response
from moorage.services.logins import AuthServices
from moorage.services.tokens import (
    InvalidTokenError,
    IssuedToken,
    TooManyScopesError,
    UnknownServiceError,
)

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
MAX_FORM_BYTES = 64 * 1024
FORM_TYPE = "application/x-www-form-urlencoded"


class _RefusedError(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


def _auth(request: Request) -> AuthServices:
    auth = get_context(request).auth
    if auth is None:
        raise _RefusedError(error_response(404, ErrorCode.NOT_FOUND, "no token service here"))
    return auth


def _unauthorized(message: str) -> _RefusedError:
    headers = {**NO_STORE, "WWW-Authenticate": basic_challenge()}
    return _RefusedError(error_response(401, ErrorCode.UNAUTHORIZED, message, headers=headers))


def _bad_request(message: str) -> _RefusedError:
    return _RefusedError(error_response(400, ErrorCode.INVALID_REQUEST, message, headers=NO_STORE))


def _scopes(values: Sequence[str]) -> list[ResourceScope]:
    try:
        return parse_scopes(values)
    except ScopeSyntaxError as exc:
        raise _bad_request(str(exc)) from None


async def _login(auth: AuthServices, request: Request, username: str, password: str) -> Principal:
    principal = await run_in_threadpool(
        auth.logins.login, username, password, client=client_address(request)
    )
    if principal is None:
        raise _unauthorized("authentication required: wrong username or password")
    return principal


async def _issue(
    auth: AuthServices,
    principal: Principal,
    scopes: list[ResourceScope],
    *,
    service: str | None,
    offline: bool,
    client_id: str | None,
) -> IssuedToken:
    try:
        return await run_in_threadpool(
            auth.tokens.issue,
            principal,
            scopes,
            service=service or auth.tokens.settings.service,
            offline=offline,
            client_id=client_id,
        )
    except (UnknownServiceError, TooManyScopesError) as exc:
        raise _bad_request(str(exc)) from None


def _body(issued: IssuedToken, *, with_scope: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "token": issued.jwt,
        "access_token": issued.jwt,
        "expires_in": issued.expires_in,
        "issued_at": issued.issued_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if with_scope:
        body["scope"] = " ".join(str(scope) for scope in issued.granted)
    if issued.refresh_token is not None:
        body["refresh_token"] = issued.refresh_token
    return body


def _truthy(value: str | None) -> bool:
    return value is not None and value.lower() in ("true", "1", "yes")


async def token_get(request: Request) -> Response:
    """``GET <realm>?service=…&scope=…&account=…&offline_token=true&client_id=…``."""
    try:
        auth = _auth(request)
        params = request.query_params
        scopes = _scopes(params.getlist("scope"))
        try:
            credentials = basic_credentials(request)
        except MalformedCredentialsError:
            raise _unauthorized("malformed Basic credentials") from None
        principal = ANONYMOUS
        if credentials is not None:
            username, password = credentials
            account = params.get("account")
            if account and account != username:
                raise _unauthorized("the account does not match the credentials")
            principal = await _login(auth, request, username, password)
        elif not scopes:
            raise _unauthorized("authentication required")
        issued = await _issue(
            auth,
            principal,
            scopes,
            service=params.get("service"),
            offline=_truthy(params.get("offline_token")),
            client_id=params.get("client_id"),
        )
    except _RefusedError as refused:
        return refused.response
    return JSONResponse(_body(issued, with_scope=False), headers=NO_STORE)


async def _form(request: Request) -> dict[str, list[str]]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != FORM_TYPE:
        raise _bad_request(f"the token request must be {FORM_TYPE}")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise _bad_request("the token request is too large")
    try:
        return parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=256)
    except (UnicodeDecodeError, ValueError):
        raise _bad_request("the token request is not a valid form") from None


async def token_post(request: Request) -> Response:
    """OAuth2 form: ``grant_type=password`` (``username``, ``password``) or
    ``grant_type=refresh_token`` (``refresh_token``); ``service``, ``scope``, ``client_id``,
    ``access_type=offline``."""
    try:
        auth = _auth(request)
        form = await _form(request)

        def field(name: str) -> str | None:
            values = form.get(name)
            return values[0] if values else None

        scopes = _scopes(form.get("scope", []))
        service = field("service") or auth.tokens.settings.service
        grant_type = field("grant_type")
        offline = field("access_type") == "offline"
        if grant_type == "password":
            username, password = field("username"), field("password")
            if not username or password is None:
                raise _bad_request("the password grant needs a username and a password")
            principal = await _login(auth, request, username, password)
        elif grant_type == "refresh_token":
            token = field("refresh_token")
            if not token:
                raise _bad_request("the refresh_token grant needs a refresh_token")
            try:
                principal = await run_in_threadpool(
                    auth.tokens.redeem_refresh_token, token, service=service
                )
            except InvalidTokenError:
                raise _unauthorized("the refresh token is not valid") from None
            offline = False  # the client keeps the refresh token it has
        else:
            raise _bad_request("grant_type must be password or refresh_token")
        issued = await _issue(
            auth, principal, scopes, service=service, offline=offline, client_id=field("client_id")
        )
    except _RefusedError as refused:
        return refused.response
    return JSONResponse(_body(issued, with_scope=True), headers=NO_STORE)
