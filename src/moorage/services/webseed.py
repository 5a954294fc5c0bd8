"""Signed, time-limited blob URLs: a torrent's web seed (BEP 19), usable without credentials.

A URL names the repository, the digest, an expiry (unix seconds) and, for a private
repository, the account it was issued to; an HMAC-SHA256 under a registry secret (made once
into the database, shared by every worker) covers all four. The signature proves only that
the registry issued the URL: the seam still asks whether the named account (or anyone, for a
URL without one) may pull the repository now, so a revoked permission or a repository made
private ends its URLs too.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import quote, urlencode

from moorage.domain.access import ANONYMOUS, Principal, PrincipalKind
from moorage.domain.errors import AccessDeniedError
from moorage.services.auth_contracts import PrincipalDirectory

WEB_SEED_SECRET = "web-seed-hmac-key"  # noqa: S105 - the registry_secret row's name
_CONTEXT = b"moorage-web-seed-v1"
_MAX_FIELD = 512  # longer query values are refused before any work


class SecretStore(Protocol):
    def secret(self, name: str, create: Callable[[], bytes]) -> bytes:
        """The registry secret ``name``; the first caller on any worker creates it."""
        ...


class WebSeedRefusedError(AccessDeniedError):
    """A web seed URL that is malformed, expired, tampered with, or whose account is gone
    (403 DENIED: a BitTorrent client has no credentials to offer instead)."""


@dataclass(frozen=True, slots=True)
class SignedUrl:
    url: str
    expires: int


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class WebSeedSigner:
    """Issues and checks web seed URLs; the key is read from the database on first use."""

    def __init__(
        self,
        secrets_store: SecretStore,
        lifetime_s: int,
        *,
        directory: PrincipalDirectory | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``directory`` re-reads the account a URL names (None: any name is taken as is,
        for a registry without accounts)."""
        self._store = secrets_store
        self.lifetime_s = lifetime_s
        self._directory = directory
        self._clock = clock
        self._key: bytes | None = None
        self._lock = threading.Lock()

    def _secret(self) -> bytes:
        if self._key is None:
            with self._lock:
                if self._key is None:
                    self._key = self._store.secret(WEB_SEED_SECRET, lambda: secrets.token_bytes(32))
        return self._key

    def _signature(self, name: str, digest: str, expires: int, user: str) -> str:
        message = b"\0".join(
            (_CONTEXT, name.encode(), digest.encode(), str(expires).encode(), user.encode())
        )
        return _encode(hmac.new(self._secret(), message, hashlib.sha256).digest())

    def sign(self, base_url: str, name: str, digest: str, user: str | None) -> SignedUrl:
        """The blob's web seed URL under ``base_url``; bound to ``user`` unless None."""
        expires = int(self._clock()) + self.lifetime_s
        query = {"expires": str(expires)}
        if user is not None:
            query["user"] = user
        query["signature"] = self._signature(name, digest, expires, user or "")
        path = f"/c1/webseed/{quote(name)}/blobs/{quote(digest, safe=':')}"
        return SignedUrl(f"{base_url.rstrip('/')}{path}?{urlencode(query)}", expires)

    def holder(self, name: str, digest: str, query: Mapping[str, str]) -> Principal:
        """Whom a web seed URL was issued to (anonymous for a public repository's), as the
        account stands now; WebSeedRefusedError for anything not issued by us or expired."""
        expires_text = query.get("expires", "")
        signature = query.get("signature", "")
        user = query.get("user") or None  # "user=" adds nothing to an anonymous URL
        if not expires_text or not signature:
            raise WebSeedRefusedError("not a signed web seed URL: expires and signature needed")
        if max(len(expires_text), len(signature), len(user or "")) > _MAX_FIELD:
            raise WebSeedRefusedError("the web seed URL is malformed")
        if not expires_text.isascii() or not expires_text.isdigit():
            raise WebSeedRefusedError("the web seed URL's expiry is not a number")
        expires = int(expires_text)
        expected = self._signature(name, digest, expires, user or "")
        if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
            raise WebSeedRefusedError("the web seed URL's signature does not match")
        if expires < self._clock():
            raise WebSeedRefusedError("the web seed URL expired; fetch the torrent again")
        if user is None:
            return ANONYMOUS
        kind = PrincipalKind.ROBOT if "+" in user else PrincipalKind.USER
        principal = Principal(kind, user)
        if self._directory is None:
            return principal
        current = self._directory.current(principal)
        if current is None:
            raise WebSeedRefusedError("the account this web seed URL was issued to is gone")
        return current
