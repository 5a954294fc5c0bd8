"""The Docker token service: signed JWTs that carry what a caller may do (protocol.md §3).

``TokenService.issue`` down-scopes the requested scopes to what the ``Authorizer`` permits and
signs a JWT; ``verify`` checks one offline (signature by ``kid``, issuer, audience, ``nbf`` and
``exp`` with a leeway) and answers the ``Grant`` it carries. Every worker verifies with the
same key ring (configured PEM files, or the key generated once into the database), so no
process state is shared. Verified tokens are cached by their SHA-256 until they expire.

Refresh tokens (``offline_token=true``, the POST ``refresh_token`` grant) are opaque random
strings; only a keyed HMAC of each is stored, bound to one subject and one audience.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

from moorage.domain.access import (
    REGISTRY,
    REPOSITORY,
    Action,
    Grant,
    Principal,
    PrincipalKind,
    ResourceScope,
)
from moorage.domain.errors import ConfigError, MoorageError
from moorage.domain.manifests.jws import libtrust_key_id
from moorage.model.sql.token_store import RefreshTokenRecord
from moorage.services.auth_contracts import Authorizer, PrincipalDirectory
from moorage.services.expiring import ExpiringEntries

SIGNING_KEY_SECRET = "token-signing-key"  # noqa: S105 - registry_secret row of the generated key
REFRESH_HMAC_SECRET = "refresh-token-hmac-key"  # noqa: S105 (a row name)
REFRESH_TOKEN_PREFIX = "mrt_"  # noqa: S105 (tells our refresh tokens apart)
MAX_TOKEN_LENGTH = 16 * 1024  # a JWT longer than this is refused before it is parsed
MAX_SCOPES = 64  # per token request: each asks the database
MIN_LIFETIME_S = 60  # clients treat anything shorter as 60 s anyway
_CONCRETE_ACTIONS = frozenset({Action.PULL.value, Action.PUSH.value, Action.DELETE.value})
_ALL_ACTIONS = _CONCRETE_ACTIONS | {Action.ALL.value}

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey


@cache
def _pyjwt() -> ModuleType:
    """PyJWT, imported on first use: it loads cryptography (several MB in every server
    process), which a server that never issues or sees a token does not need."""
    import jwt

    return jwt


class TokenRefusal(StrEnum):
    """Why a token did not verify (logged; the client only learns ``invalid_token``)."""

    MALFORMED = "malformed"
    ALGORITHM = "algorithm not accepted"
    UNKNOWN_KEY = "unknown key id"
    SIGNATURE = "bad signature"
    ISSUER = "wrong issuer"
    AUDIENCE = "wrong audience"
    EXPIRED = "expired"
    NOT_YET_VALID = "not yet valid"


class InvalidTokenError(MoorageError):
    """A bearer token (or refresh token) that must not be honoured: 401 ``invalid_token``."""

    def __init__(self, reason: TokenRefusal) -> None:
        super().__init__(f"invalid token: {reason.value}")
        self.reason = reason


class UnknownServiceError(MoorageError):
    """A token asked for another audience than this registry's service name (400)."""


class TooManyScopesError(MoorageError):
    """A token request naming more resource scopes than one token carries (400)."""


# -- keys ---------------------------------------------------------------------------------


def _algorithm_of(key: PrivateKey | PublicKey) -> str:
    from cryptography.hazmat.primitives.asymmetric import ec

    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        if isinstance(key.curve, ec.SECP256R1):
            return "ES256"
        if isinstance(key.curve, ec.SECP384R1):
            return "ES384"
        raise ConfigError(f"EC keys must be on P-256 or P-384, not {key.curve.name}")
    if key.key_size < 2048:
        raise ConfigError(f"RSA keys must have at least 2048 bits, not {key.key_size}")
    return "RS256"


@dataclass(frozen=True, slots=True)
class VerifyingKey:
    kid: str
    algorithm: str  # the only algorithm a token under this kid may name
    public_key: PublicKey


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    algorithm: str
    private_key: PrivateKey

    @classmethod
    def generate(cls, algorithm: str = "ES256") -> SigningKey:
        from cryptography.hazmat.primitives.asymmetric import ec, rsa

        key: PrivateKey = (
            rsa.generate_private_key(public_exponent=65537, key_size=3072)
            if algorithm == "RS256"
            else ec.generate_private_key(ec.SECP256R1())
        )
        return cls.from_private_key(key)

    @classmethod
    def from_private_key(cls, key: PrivateKey) -> SigningKey:
        return cls(libtrust_key_id(key.public_key()), _algorithm_of(key), key)

    def to_pem(self) -> bytes:
        from cryptography.hazmat.primitives import serialization

        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def verifying(self) -> VerifyingKey:
        return VerifyingKey(self.kid, self.algorithm, self.private_key.public_key())


def load_pem_key(data: bytes, origin: str) -> SigningKey | VerifyingKey:
    """A private key (can sign) or a public key (a retired key that only verifies)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    try:
        if b"PRIVATE KEY" in data:
            private = serialization.load_pem_private_key(data, password=None)
            if not isinstance(private, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
                raise ConfigError(f"{origin}: only EC (P-256, P-384) and RSA keys sign tokens")
            return SigningKey.from_private_key(private)
        public = serialization.load_pem_public_key(data)
    except ValueError:
        raise ConfigError(
            f"{origin}: not a PEM key (an unencrypted private or public key)"
        ) from None
    if not isinstance(public, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise ConfigError(f"{origin}: only EC (P-256, P-384) and RSA keys verify tokens")
    return VerifyingKey(libtrust_key_id(public), _algorithm_of(public), public)


@dataclass(frozen=True, slots=True)
class KeyRing:
    """The key that signs and every key that verifies (the signing one included): a retired
    key stays here until the last token it signed has expired."""

    signing: SigningKey
    verifying: dict[str, VerifyingKey]

    @classmethod
    def of(cls, signing: SigningKey, retired: Iterable[VerifyingKey] = ()) -> KeyRing:
        keys = {key.kid: key for key in retired}
        keys[signing.kid] = signing.verifying
        return cls(signing, keys)

    @classmethod
    def from_files(cls, paths: Sequence[Path]) -> KeyRing:
        """The first file signs (a private key); the others only verify (private or public)."""
        loaded: list[SigningKey | VerifyingKey] = []
        for path in paths:
            try:
                data = path.expanduser().read_bytes()
            except OSError as exc:
                raise ConfigError(f"auth key {path}: {exc.strerror or exc}") from None
            loaded.append(load_pem_key(data, f"auth key {path}"))
        first = loaded[0]
        if not isinstance(first, SigningKey):
            raise ConfigError(f"auth key {paths[0]}: the first key signs, so it must be private")
        retired = [k.verifying if isinstance(k, SigningKey) else k for k in loaded[1:]]
        return cls.of(first, retired)


# -- storage ------------------------------------------------------------------------------


class TokenStore(Protocol):
    """What the token service keeps in the database (``model/sql/token_store.py``)."""

    def secret(self, name: str, create: Callable[[], bytes]) -> bytes:
        """The registry secret ``name``; the first caller on any worker creates it."""
        ...

    def add_refresh_token(self, record: RefreshTokenRecord) -> None: ...

    def find_refresh_token(self, token_hash: str) -> RefreshTokenRecord | None: ...

    def revoke_refresh_token(self, token_hash: str) -> bool: ...

    def revoke_refresh_tokens_of(self, subject_name: str) -> int:
        """Every refresh token of ``subject_name``; how many there were."""
        ...


def database_key_ring(store: TokenStore, algorithm: str = "ES256") -> KeyRing:
    """The generated key in the database (made by the first worker that starts)."""
    pem = store.secret(SIGNING_KEY_SECRET, lambda: SigningKey.generate(algorithm).to_pem())
    key = load_pem_key(pem, "the generated token key")
    assert isinstance(key, SigningKey)
    return KeyRing.of(key)


# -- the service --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TokenSettings:
    service: str  # the registry's identity: ``aud`` and the challenge's ``service``
    issuer: str
    lifetime_s: int = 300
    leeway_s: int = 60  # clock skew allowed on ``nbf`` and ``exp``
    cache_size: int = 10_000  # verified tokens remembered


@dataclass(frozen=True, slots=True)
class IssuedToken:
    jwt: str
    granted: tuple[ResourceScope, ...]
    expires_in: int
    issued_at: datetime
    refresh_token: str | None = None


_JWT_ERRORS: tuple[tuple[str, TokenRefusal], ...] = (
    ("InvalidAudienceError", TokenRefusal.AUDIENCE),
    ("InvalidIssuerError", TokenRefusal.ISSUER),
    ("InvalidSignatureError", TokenRefusal.SIGNATURE),
    ("InvalidAlgorithmError", TokenRefusal.ALGORITHM),
)
_REQUIRED_CLAIMS = ["exp", "nbf", "iat", "iss", "aud", "sub", "access"]


class TokenService:
    """Issues and verifies the registry's bearer tokens and its refresh tokens."""

    def __init__(
        self,
        authorizer: Authorizer,
        keys: KeyRing | Callable[[], KeyRing],
        settings: TokenSettings,
        *,
        store: TokenStore | None = None,
        directory: PrincipalDirectory | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``keys`` may be a function, called on first use (the generated key is read from
        the database only when a token is first issued or verified, not at build time);
        ``store`` enables refresh tokens; ``directory`` re-reads a refresh token's subject on
        every use (a disabled or deleted account's refresh tokens then stop working)."""
        self.authorizer = authorizer
        self._keys = keys if isinstance(keys, KeyRing) else None
        self._load_keys = None if isinstance(keys, KeyRing) else keys
        self.settings = settings
        self.store = store
        self.directory = directory
        self.clock = clock
        # Verified grants by SHA-256 of the token, each until its token expires: no token kept.
        self._cache: ExpiringEntries[bytes, Grant] = ExpiringEntries(settings.cache_size)
        self._refresh_key: bytes | None = None

    @property
    def keys(self) -> KeyRing:
        if self._keys is None:
            assert self._load_keys is not None
            self._keys = self._load_keys()  # idempotent: every caller gets the same ring
        return self._keys

    @property
    def refresh_supported(self) -> bool:
        return self.store is not None

    # -- issuing ----------------------------------------------------------------------------

    def grant(
        self, principal: Principal, requested: Sequence[ResourceScope]
    ) -> list[ResourceScope]:
        """The requested scopes cut down to what ``principal`` is permitted (never a refusal:
        a scope left with no action is dropped). Scopes on one resource are merged; ``*``
        asks for every action, and grants ``*`` only to whoever is permitted ``*``."""
        if len(requested) > MAX_SCOPES:
            raise TooManyScopesError(f"at most {MAX_SCOPES} scopes per token")
        merged: dict[tuple[str, str], set[str]] = {}
        for scope in requested:
            if scope.type not in (REPOSITORY, REGISTRY):
                continue  # no other resource type exists here
            merged.setdefault((scope.type, scope.name), set()).update(scope.actions)
        granted: list[ResourceScope] = []
        for (type_, name), actions in merged.items():
            # On a repository ``*`` stands for every action; on the registry (the catalog) it
            # is the one action there is.
            expand = type_ == REPOSITORY and Action.ALL.value in actions
            wanted = _ALL_ACTIONS if expand else frozenset(actions)
            permitted = self.authorizer.permitted(principal, ResourceScope(type_, name, wanted))
            if type_ == REPOSITORY and Action.ALL.value in permitted:
                permitted = permitted | _ALL_ACTIONS
            allowed = wanted & permitted
            if allowed:
                granted.append(ResourceScope(type_, name, frozenset(allowed)))
        return granted

    def issue(
        self,
        principal: Principal,
        requested: Sequence[ResourceScope],
        *,
        service: str,
        offline: bool = False,
        client_id: str | None = None,
    ) -> IssuedToken:
        if service != self.settings.service:
            raise UnknownServiceError(f"this registry's service is {self.settings.service!r}")
        granted = tuple(self.grant(principal, requested))
        now = int(self.clock())
        lifetime = max(self.settings.lifetime_s, MIN_LIFETIME_S)
        claims: dict[str, Any] = {
            "iss": self.settings.issuer,
            "sub": principal.name,
            "aud": service,
            "exp": now + lifetime,
            "nbf": now,
            "iat": now,
            "jti": secrets.token_urlsafe(16),
            "access": [
                {"type": s.type, "name": s.name, "actions": sorted(s.actions)} for s in granted
            ],
            "context": {
                "kind": principal.kind.value,
                "id": principal.id,
                "superuser": principal.superuser,
            },
        }
        key = self.keys.signing
        token = _pyjwt().encode(
            claims, key.private_key, algorithm=key.algorithm, headers={"kid": key.kid}
        )
        refresh = None
        if offline and not principal.is_anonymous and self.store is not None:
            refresh = self.new_refresh_token(principal, service, client_id)
        return IssuedToken(
            jwt=token,
            granted=granted,
            expires_in=lifetime,
            issued_at=datetime.fromtimestamp(now, UTC),
            refresh_token=refresh,
        )

    # -- verifying --------------------------------------------------------------------------

    def verify(self, token: str) -> Grant:
        """The grant a bearer token carries, or InvalidTokenError with the reason."""
        now = self.clock()
        # A JWT is ASCII (base64url and dots); anything else is refused before any parsing.
        if len(token) > MAX_TOKEN_LENGTH or not token.isascii():
            raise InvalidTokenError(TokenRefusal.MALFORMED)
        digest = hashlib.sha256(token.encode("ascii")).digest()
        cached = self._cache.get(digest, now)
        if cached is not None:
            return cached
        claims = self._decode(token, now)
        grant = Grant(_principal_of(claims), _access_of(claims["access"]))
        self._cache.put(digest, float(claims["exp"]) + self.settings.leeway_s, grant)
        return grant

    def _decode(self, token: str, now: float) -> dict[str, Any]:
        jwt = _pyjwt()
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidTokenError(TokenRefusal.MALFORMED) from None
        algorithm, kid = header.get("alg"), header.get("kid")
        # Never "none", never HMAC (whose key would be our public key): only what a key is.
        if not isinstance(algorithm, str) or algorithm not in {"ES256", "ES384", "RS256"}:
            raise InvalidTokenError(TokenRefusal.ALGORITHM)
        key = self.keys.verifying.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise InvalidTokenError(TokenRefusal.UNKNOWN_KEY)
        if algorithm != key.algorithm:
            raise InvalidTokenError(TokenRefusal.ALGORITHM)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.public_key,
                algorithms=[key.algorithm],
                audience=self.settings.service,
                issuer=self.settings.issuer,
                leeway=self.settings.leeway_s,
                # Times are checked below, on the service's clock (a test's, or the wall's).
                options={
                    "require": _REQUIRED_CLAIMS,
                    "strict_aud": True,
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.PyJWTError as exc:
            for error, reason in _JWT_ERRORS:
                if isinstance(exc, getattr(jwt, error)):
                    raise InvalidTokenError(reason) from None
            raise InvalidTokenError(TokenRefusal.MALFORMED) from None
        exp, nbf, leeway = claims["exp"], claims["nbf"], self.settings.leeway_s
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (exp, nbf)):
            raise InvalidTokenError(TokenRefusal.MALFORMED)
        if now >= exp + leeway:
            raise InvalidTokenError(TokenRefusal.EXPIRED)
        if now < nbf - leeway:
            raise InvalidTokenError(TokenRefusal.NOT_YET_VALID)
        return claims

    # -- refresh tokens ---------------------------------------------------------------------

    def _hash_refresh(self, token: str) -> str:
        assert self.store is not None
        if self._refresh_key is None:
            self._refresh_key = self.store.secret(
                REFRESH_HMAC_SECRET, lambda: secrets.token_bytes(32)
            )
        data = token.encode("utf-8", "surrogatepass")
        return hmac.new(self._refresh_key, data, hashlib.sha256).hexdigest()

    def new_refresh_token(
        self, principal: Principal, audience: str, client_id: str | None = None
    ) -> str:
        if self.store is None:
            raise MoorageError("refresh tokens need the token store")
        token = REFRESH_TOKEN_PREFIX + secrets.token_urlsafe(32)
        record = RefreshTokenRecord(
            token_hash=self._hash_refresh(token),
            subject=principal,
            audience=audience,
            client_id=_printable(client_id, 255),
            created=datetime.now(UTC),
        )
        self.store.add_refresh_token(record)
        return token

    def redeem_refresh_token(self, token: str, *, service: str) -> Principal:
        """The subject a refresh token stands for, as the account is now; InvalidTokenError
        for an unknown or revoked token, another audience, or a disabled account."""
        if self.store is None or len(token) > 512:
            raise InvalidTokenError(TokenRefusal.MALFORMED)
        record = self.store.find_refresh_token(self._hash_refresh(token))
        if record is None:
            raise InvalidTokenError(TokenRefusal.UNKNOWN_KEY)
        if record.audience != service:
            raise InvalidTokenError(TokenRefusal.AUDIENCE)
        if self.directory is None:
            return record.subject
        current = self.directory.current(record.subject)
        if current is None:
            raise InvalidTokenError(TokenRefusal.UNKNOWN_KEY)
        return current

    def revoke_refresh_token(self, token: str) -> bool:
        return self.store is not None and self.store.revoke_refresh_token(self._hash_refresh(token))


def _printable(text: str | None, limit: int) -> str | None:
    """Free text from a client, as the database can hold it: printable characters only (no
    NUL, which PostgreSQL refuses, no lone surrogates), at most ``limit``."""
    if not text:
        return None
    kept = "".join(c for c in text[: limit * 4] if c.isprintable())  # lone surrogates too
    return kept[:limit] or None


def _principal_of(claims: dict[str, Any]) -> Principal:
    subject, context = claims["sub"], claims.get("context")
    if not isinstance(subject, str) or not isinstance(context, dict):
        raise InvalidTokenError(TokenRefusal.MALFORMED)
    try:
        kind = PrincipalKind(str(context.get("kind")))
    except ValueError:
        raise InvalidTokenError(TokenRefusal.MALFORMED) from None
    id_, superuser = context.get("id"), context.get("superuser", False)
    if not (id_ is None or isinstance(id_, int)) or not isinstance(superuser, bool):
        raise InvalidTokenError(TokenRefusal.MALFORMED)
    return Principal(kind, subject, id_, superuser)


def _access_of(access: Any) -> tuple[ResourceScope, ...]:
    if not isinstance(access, list) or len(access) > MAX_SCOPES:
        raise InvalidTokenError(TokenRefusal.MALFORMED)
    scopes = []
    for entry in access:
        if not isinstance(entry, dict):
            raise InvalidTokenError(TokenRefusal.MALFORMED)
        type_, name, actions = entry.get("type"), entry.get("name"), entry.get("actions")
        if not (isinstance(type_, str) and isinstance(name, str) and isinstance(actions, list)):
            raise InvalidTokenError(TokenRefusal.MALFORMED)
        if not all(isinstance(action, str) for action in actions):
            raise InvalidTokenError(TokenRefusal.MALFORMED)
        scopes.append(ResourceScope(type_, name, frozenset(actions)))
    return tuple(scopes)
