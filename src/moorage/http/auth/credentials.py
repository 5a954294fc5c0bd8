"""Reading the ``Authorization`` header: Basic credentials and bearer tokens."""

from __future__ import annotations

import base64
import binascii

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from moorage.domain.access import Principal
from moorage.services.logins import LoginService


class MalformedCredentialsError(ValueError):
    """An ``Authorization: Basic`` header that does not decode to ``user:password``."""


class WrongCredentialsError(ValueError):
    """Basic credentials that name no account, a wrong secret or a disabled account (401)."""


def _scheme_and_value(header: str | None) -> tuple[str, str] | None:
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    return scheme.lower(), value.strip()


def basic_credentials(request: Request) -> tuple[str, str] | None:
    """(username, password) of a Basic header; None without one (or with another scheme)."""
    return basic_credentials_in(request.headers.get("authorization"))


def basic_credentials_in(header: str | None) -> tuple[str, str] | None:
    """``basic_credentials`` of an ``Authorization`` header's value."""
    found = _scheme_and_value(header)
    if found is None or found[0] != "basic":
        return None
    try:
        decoded = base64.b64decode(found[1], validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise MalformedCredentialsError("malformed Basic credentials") from None
    username, colon, password = decoded.partition(":")
    if not colon:
        raise MalformedCredentialsError("malformed Basic credentials")
    return username, password


def bearer_token(request: Request) -> str | None:
    return bearer_token_in(request.headers.get("authorization"))


def bearer_token_in(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer`` header's value; None for anything else."""
    found = _scheme_and_value(header)
    return found[1] if found is not None and found[0] == "bearer" and found[1] else None


def client_address(request: Request) -> str | None:
    return request.client.host if request.client is not None else None


async def basic_principal(request: Request, logins: LoginService) -> Principal | None:
    """For the access seam: the principal of the request's Basic credentials, None without
    any; WrongCredentialsError for wrong ones (counted), MalformedCredentialsError for a
    broken header, TooManyRequestsError (429) while the account or address is throttled."""
    credentials = basic_credentials(request)
    if credentials is None:
        return None
    username, password = credentials
    principal = await run_in_threadpool(
        logins.login, username, password, client=client_address(request)
    )
    if principal is None:
        raise WrongCredentialsError("wrong credentials")
    return principal
