"""``WWW-Authenticate`` challenges (RFC 6750 §3, distribution's scope format) and the realm.

Every value is a quoted string; all scopes go in one ``scope`` parameter, separated by single
spaces (Docker and containerd split on them).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from starlette.requests import Request

from moorage.domain.access import ResourceScope
from moorage.services.logins import AuthServices

TOKEN_PATH = "/v2/auth"  # noqa: S105 (a path)
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def quoted(value: str) -> str:
    """An RFC 7230 quoted-string: backslash before ``"`` and ``\\``; control characters,
    which no header may carry, are dropped."""
    clean = "".join(c for c in value if c == "\t" or (c >= " " and c != "\x7f"))
    return '"' + clean.replace("\\", "\\\\").replace('"', '\\"') + '"'


def bearer_challenge(
    realm: str, service: str, scopes: Iterable[ResourceScope | str] = (), error: str | None = None
) -> str:
    """``Bearer realm="…",service="…"[,scope="a b"][,error="…"]``; ``error`` is
    ``invalid_token`` (bad or expired token) or ``insufficient_scope``."""
    parts = [f"realm={quoted(realm)}", f"service={quoted(service)}"]
    scope = " ".join(str(s) for s in scopes)
    if scope:
        parts.append(f"scope={quoted(scope)}")
    if error:
        parts.append(f"error={quoted(error)}")
    return "Bearer " + ",".join(parts)


def basic_challenge(realm: str = "Moorage") -> str:
    return f"Basic realm={quoted(realm)}"


def _is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def realm_for(request: Request, configured: str | None) -> str:
    """The token endpoint's absolute URL: the configured one; else the address the client
    used when that is a loopback one (a local registry); else the server's own address.
    Never a remote Host header: a forged one would send clients' passwords elsewhere."""
    if configured:
        return configured
    scheme = request.url.scheme
    host = request.url.hostname or ""
    if host and _is_loopback(host):
        port = request.url.port
        netloc = f"[{host}]" if ":" in host else host
        return f"{scheme}://{netloc}{f':{port}' if port else ''}{TOKEN_PATH}"
    server = request.scope.get("server")
    if server and server[0]:
        address, port = server[0], server[1]
        netloc = f"[{address}]" if ":" in str(address) else str(address)
        return f"{scheme}://{netloc}:{port}{TOKEN_PATH}"
    return f"{scheme}://127.0.0.1{TOKEN_PATH}"


def challenge_for(
    request: Request,
    auth: AuthServices,
    scopes: Iterable[ResourceScope | str] = (),
    error: str | None = None,
) -> str:
    """The Bearer challenge for this request: the configured (or derived) realm, our service."""
    return bearer_challenge(
        realm_for(request, auth.realm), auth.tokens.settings.service, scopes, error
    )
