"""Checking credentials (token endpoint and Basic auth on ``/v2``), with failed logins
throttled per account and per client address (the ``limits`` library).

A throttled login is refused before the credentials are even looked at, with
``TooManyRequestsError`` (429 ``TOOMANYREQUESTS`` + ``Retry-After``). Only failures count.
Successful password checks are remembered briefly under a keyed hash (Basic auth sends the
password on every request, and argon2 takes tens of milliseconds each time).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

import limits
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from moorage.domain.access import Principal
from moorage.domain.accounts import APP_TOKEN_PREFIX, ROBOT_SEPARATOR
from moorage.domain.errors import ConfigError, TooManyRequestsError
from moorage.observability import get_logger
from moorage.services.account_standing import AccountStanding
from moorage.services.auth_contracts import Authenticator
from moorage.services.expiring import ExpiringEntries
from moorage.services.tokens import InvalidTokenError, TokenService

log = get_logger(__name__)

TOKEN_USERNAME = "$token"  # noqa: S105 - the password is one of our access tokens
OAUTH_TOKEN_USERNAME = "$oauthtoken"  # noqa: S105 - Quay's OAuth application tokens: none exist here
APP_TOKEN_USERNAME = "$app"  # noqa: S105 - the password is an application token (the Authenticator's)
MAX_CREDENTIAL_LENGTH = 4096  # longer usernames or secrets are refused unread


def parse_limit(text: str, setting: str) -> limits.RateLimitItem:
    try:
        return limits.parse(text)
    except ValueError:
        raise ConfigError(f"{setting}: not a rate such as '10/minute' ({text[:40]!r})") from None


class LoginThrottle:
    """Failed logins per account and per client address, over a moving window. With the
    default ``memory://`` storage each server process counts on its own; a shared storage
    (``redis://…``, any the ``limits`` library knows) makes the count cluster-wide."""

    def __init__(
        self,
        per_account: str = "10/minute",
        per_client: str = "30/minute",
        storage: str = "memory://",
    ) -> None:
        self.per_account = parse_limit(per_account, "auth.login_limit_per_account")
        self.per_client = parse_limit(per_client, "auth.login_limit_per_client")
        try:
            self._limiter = MovingWindowRateLimiter(storage_from_string(storage))
        except Exception:  # the library raises several kinds for a bad URI
            raise ConfigError(
                "auth.throttle_storage: not a storage URI the limits library knows"
            ) from None

    def _keys(self, account: str, client: str | None) -> list[tuple[limits.RateLimitItem, str]]:
        keys = [(self.per_account, "account:" + account.lower()[:255])]
        if client:
            keys.append((self.per_client, "client:" + client[:255]))
        return keys

    def check(self, account: str, client: str | None) -> None:
        """Raises TooManyRequestsError while either count is at its limit."""
        for item, key in self._keys(account, client):
            if not self._limiter.test(item, "login", key):
                stats = self._limiter.get_window_stats(item, "login", key)
                retry_after = max(1, math.ceil(stats.reset_time - time.time()))
                raise TooManyRequestsError("too many failed logins, retry later", retry_after)

    def failed(self, account: str, client: str | None) -> None:
        for item, key in self._keys(account, client):
            self._limiter.hit(item, "login", key)


class _SuccessCache:
    """Principals of recently checked credentials, keyed by an HMAC (process-random key) of
    username and secret: neither is kept. Entries live ``ttl_s``; bounded."""

    def __init__(self, ttl_s: float, size: int = 4096) -> None:
        self._ttl_s = ttl_s
        self._key = secrets.token_bytes(32)
        self._entries: ExpiringEntries[bytes, Principal] = ExpiringEntries(size)

    def key(self, username: str, secret: str) -> bytes:
        data = f"{len(username)}:{username}:{secret}".encode("utf-8", "surrogatepass")
        return hmac.new(self._key, data, hashlib.sha256).digest()

    def get(self, key: bytes, now: float) -> Principal | None:
        return self._entries.get(key, now)

    def put(self, key: bytes, now: float, principal: Principal) -> None:
        if self._ttl_s > 0:
            self._entries.put(key, now + self._ttl_s, principal)


class LoginService:
    """``login(username, secret, client=address)``: the principal, None for wrong
    credentials (counted), or TooManyRequestsError while throttled."""

    def __init__(
        self,
        authenticator: Authenticator,
        tokens: TokenService,
        throttle: LoginThrottle,
        *,
        success_ttl_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.authenticator = authenticator
        self.tokens = tokens
        self.throttle = throttle
        self.clock = clock
        self._successes = _SuccessCache(success_ttl_s)

    def login(self, username: str, secret: str, *, client: str | None) -> Principal | None:
        now = self.clock()
        if not username or len(username) > MAX_CREDENTIAL_LENGTH:
            self._failed(username[:255], client)
            return None
        if len(secret) > MAX_CREDENTIAL_LENGTH:
            self._failed(username, client)
            return None
        key = self._successes.key(username, secret)
        cached = self._successes.get(key, now)
        if cached is not None:
            return cached
        self.throttle.check(username, client)
        principal = self._check(username, secret)
        if principal is None:
            self._failed(username, client)
            return None
        if self._slow_to_check(username, secret):
            self._successes.put(key, now, principal)
        return principal

    def remembered(self, username: str, secret: str) -> Principal | None:
        """The principal of a password check that ``login`` made within the login cache's
        lifetime, else None (then call ``login``). A keyed hash and a lookup, no I/O: safe on
        the event loop, so a Basic caller's every request does not wait for a thread."""
        if not username or max(len(username), len(secret)) > MAX_CREDENTIAL_LENGTH:
            return None
        return self._successes.get(self._successes.key(username, secret), self.clock())

    @staticmethod
    def _slow_to_check(username: str, secret: str) -> bool:
        """Only password checks (argon2) are remembered. Robot secrets, application tokens
        and our own tokens cost microseconds to check, so a regenerated secret or revoked
        token stops working at once."""
        return (
            ROBOT_SEPARATOR not in username
            and username not in (TOKEN_USERNAME, APP_TOKEN_USERNAME)
            and not secret.startswith(APP_TOKEN_PREFIX)
        )

    def _check(self, username: str, secret: str) -> Principal | None:
        if username == TOKEN_USERNAME:
            try:
                grant = self.tokens.verify(secret)
            except InvalidTokenError:
                return None
            if grant.principal.is_anonymous:
                return None
            # The account as it stands now: a disabled one's tokens log nobody in.
            directory = self.tokens.directory
            return grant.principal if directory is None else directory.current(grant.principal)
        if username == OAUTH_TOKEN_USERNAME:
            return None
        return self.authenticator.authenticate(username, secret)

    def _failed(self, username: str, client: str | None) -> None:
        self.throttle.failed(username, client)
        # The account and address only: never the secret.
        log.info("login failed", account=username[:100], client=client)


@dataclass(frozen=True, slots=True)
class AuthServices:
    """What the token endpoint and the access seam are handed."""

    tokens: TokenService
    logins: LoginService
    realm: str | None = None  # absolute URL of the token endpoint; None: derived per request
    enabled: bool = True
    # Re-reads, every few seconds, the accounts that tokens and remembered logins name.
    standing: AccountStanding | None = None
