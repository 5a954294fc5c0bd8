"""The token service: issuing (down-scoping), verifying (every refusal), keys and rotation,
refresh tokens and the login throttle.

Accounts come from a tiny explicit implementation of the Authenticator/Authorizer protocols
(a dict of users and permissions) so these tests pin the token service alone; the SQL store
tests run on a migrated SQLite database and on PostgreSQL.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from moorage.db import tables
from moorage.db.engine import Database, create_database_engine
from moorage.db.migrate import upgrade
from moorage.domain.access import (
    ANONYMOUS,
    CATALOG_SCOPE,
    Action,
    Principal,
    PrincipalKind,
    ResourceScope,
    repository_scope,
)
from moorage.domain.errors import ConfigError, TooManyRequestsError
from moorage.model.sql.token_store import SqlTokenStore
from moorage.services.logins import LoginService, LoginThrottle
from moorage.services.tokens import (
    InvalidTokenError,
    KeyRing,
    SigningKey,
    TokenRefusal,
    TokenService,
    TokenSettings,
    TooManyScopesError,
    UnknownServiceError,
    VerifyingKey,
    database_key_ring,
    load_pem_key,
)
from support.fake_accounts import Accounts, MemoryStore

SERVICE = "registry.test"
ISSUER = "moorage-test-issuer"
ALICE = Principal(PrincipalKind.USER, "alice", 1)
BOB = Principal(PrincipalKind.USER, "bob", 2)


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture
def accounts() -> Accounts:
    return Accounts(
        passwords={"alice": "alice-secret-1", "bob": "bob-secret-2"},
        principals={"alice": ALICE, "bob": BOB},
        actions={
            ("alice", "acme/app"): frozenset({"pull", "push", "delete"}),
            ("alice", "acme/admin"): frozenset({"pull", "push", "delete", "*"}),
            ("bob", "acme/app"): frozenset({"pull"}),
        },
        public={"library/alpine"},
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


def make_service(
    accounts: Accounts, keys: KeyRing, clock: Clock, store: MemoryStore | None = None, **kw: Any
) -> TokenService:
    settings = TokenSettings(service=SERVICE, issuer=ISSUER, **kw)
    return TokenService(accounts, keys, settings, store=store, directory=accounts, clock=clock)


@pytest.fixture
def tokens(accounts: Accounts, key: SigningKey, clock: Clock, store: MemoryStore) -> TokenService:
    return make_service(accounts, KeyRing.of(key), clock, store)


def claims_of(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict[str, Any], claims: dict[str, Any], sign: Callable[[bytes], bytes]) -> str:
    head = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
    return head + "." + b64(sign(head.encode()))


# -- issuing -------------------------------------------------------------------------------


def test_a_token_carries_the_granted_access_and_the_standard_claims(
    tokens: TokenService, key: SigningKey, clock: Clock
) -> None:
    issued = tokens.issue(
        ALICE, [repository_scope("acme/app", Action.PULL, Action.PUSH)], service=SERVICE
    )
    header = jwt.get_unverified_header(issued.jwt)
    assert header["alg"] == "ES256" and header["kid"] == key.kid and header["typ"] == "JWT"
    claims = claims_of(issued.jwt)
    assert claims["iss"] == ISSUER and claims["aud"] == SERVICE and claims["sub"] == "alice"
    assert claims["iat"] == claims["nbf"] == int(clock.now)
    assert claims["exp"] == int(clock.now) + 300 and issued.expires_in == 300
    assert claims["access"] == [
        {"type": "repository", "name": "acme/app", "actions": ["pull", "push"]}
    ]
    assert len(claims["jti"]) >= 16
    assert issued.issued_at.timestamp() == int(clock.now)
    grant = tokens.verify(issued.jwt)
    assert grant.principal == ALICE
    assert grant.allows("repository", "acme/app", "push")
    assert not grant.allows("repository", "acme/app", "delete")


def test_actions_the_caller_lacks_are_dropped_not_refused(tokens: TokenService) -> None:
    issued = tokens.issue(
        BOB,
        [
            repository_scope("acme/app", Action.PULL, Action.PUSH),
            repository_scope("acme/secret", Action.PULL),
        ],
        service=SERVICE,
    )
    assert [str(s) for s in issued.granted] == ["repository:acme/app:pull"]
    grant = tokens.verify(issued.jwt)
    assert grant.allows("repository", "acme/app", "pull")
    assert not grant.allows("repository", "acme/app", "push")
    assert not grant.allows("repository", "acme/secret", "pull")


def test_nothing_permitted_still_gives_a_token_with_empty_access(tokens: TokenService) -> None:
    issued = tokens.issue(ANONYMOUS, [repository_scope("acme/app", Action.PUSH)], service=SERVICE)
    assert issued.granted == () and claims_of(issued.jwt)["access"] == []
    assert tokens.verify(issued.jwt).principal.is_anonymous


def test_anonymous_pulls_public_repositories_only(tokens: TokenService) -> None:
    requested = [
        repository_scope("library/alpine", Action.PULL, Action.PUSH),
        repository_scope("acme/app", Action.PULL),
    ]
    issued = tokens.issue(ANONYMOUS, requested, service=SERVICE)
    assert [str(s) for s in issued.granted] == ["repository:library/alpine:pull"]


def test_star_grants_star_only_to_whoever_may_do_everything(tokens: TokenService) -> None:
    star = frozenset({"*"})
    admin = tokens.issue(ALICE, [ResourceScope("repository", "acme/admin", star)], service=SERVICE)
    assert admin.granted[0].actions == {"*", "pull", "push", "delete"}
    writer = tokens.issue(ALICE, [ResourceScope("repository", "acme/app", star)], service=SERVICE)
    assert writer.granted[0].actions == {"pull", "push", "delete"}
    reader = tokens.issue(BOB, [ResourceScope("repository", "acme/app", star)], service=SERVICE)
    assert reader.granted[0].actions == {"pull"}


def test_scopes_on_one_repository_are_merged(tokens: TokenService) -> None:
    issued = tokens.issue(
        ALICE,
        [repository_scope("acme/app", Action.PULL), repository_scope("acme/app", Action.PUSH)],
        service=SERVICE,
    )
    assert [str(s) for s in issued.granted] == ["repository:acme/app:pull,push"]


def test_catalog_scope_for_authenticated_callers(tokens: TokenService) -> None:
    issued = tokens.issue(ALICE, [CATALOG_SCOPE], service=SERVICE)
    assert tokens.verify(issued.jwt).allows("registry", "catalog", "*")
    # Exactly what was asked: "*" on the catalog is not "pull,push,delete" too.
    assert claims_of(issued.jwt)["access"] == [
        {"type": "registry", "name": "catalog", "actions": ["*"]}
    ]
    anonymous = tokens.issue(ANONYMOUS, [CATALOG_SCOPE], service=SERVICE)
    assert not tokens.verify(anonymous.jwt).allows("registry", "catalog", "*")


def test_unknown_resource_types_are_not_even_asked(
    tokens: TokenService, accounts: Accounts
) -> None:
    issued = tokens.issue(
        ALICE, [ResourceScope("plugin", "acme/app", frozenset({"pull"}))], service=SERVICE
    )
    assert issued.granted == () and accounts.asked == []


def test_a_token_for_another_service_is_not_issued(tokens: TokenService) -> None:
    with pytest.raises(UnknownServiceError):
        tokens.issue(ALICE, [], service="other.registry")


def test_too_many_scopes_are_refused(tokens: TokenService) -> None:
    many = [repository_scope(f"acme/r{i}", Action.PULL) for i in range(65)]
    with pytest.raises(TooManyScopesError):
        tokens.issue(ALICE, many, service=SERVICE)


def test_lifetime_is_never_below_sixty_seconds(
    accounts: Accounts, key: SigningKey, clock: Clock
) -> None:
    service = make_service(accounts, KeyRing.of(key), clock, lifetime_s=5)
    assert service.issue(ALICE, [], service=SERVICE).expires_in == 60


# -- verifying: every refusal --------------------------------------------------------------


def refusal(tokens: TokenService, token: str) -> TokenRefusal:
    with pytest.raises(InvalidTokenError) as caught:
        tokens.verify(token)
    return caught.value.reason


def test_an_expired_token_is_refused_after_the_leeway(tokens: TokenService, clock: Clock) -> None:
    token = tokens.issue(ALICE, [repository_scope("acme/app", Action.PULL)], service=SERVICE).jwt
    clock.now += 300 + 59
    assert tokens.verify(token).principal == ALICE  # within the 60 s skew
    clock.now += 1
    assert refusal(tokens, token) is TokenRefusal.EXPIRED


def test_a_cached_token_still_expires(tokens: TokenService, clock: Clock) -> None:
    token = tokens.issue(ALICE, [], service=SERVICE).jwt
    tokens.verify(token)
    clock.now += 360
    assert refusal(tokens, token) is TokenRefusal.EXPIRED


def test_a_token_not_yet_valid_is_refused(tokens: TokenService, clock: Clock) -> None:
    clock.now += 61
    token = tokens.issue(ALICE, [], service=SERVICE).jwt
    clock.now -= 61
    assert refusal(tokens, token) is TokenRefusal.NOT_YET_VALID
    clock.now += 2  # 59 s early: within the skew
    assert tokens.verify(token).principal == ALICE


def test_a_token_signed_by_another_key_with_our_kid_is_refused(
    tokens: TokenService, key: SigningKey, clock: Clock
) -> None:
    stranger = SigningKey.generate()
    claims = claims_of(tokens.issue(ALICE, [], service=SERVICE).jwt)
    token = jwt.encode(claims, stranger.private_key, algorithm="ES256", headers={"kid": key.kid})
    assert refusal(tokens, token) is TokenRefusal.SIGNATURE


def test_a_token_signed_by_an_unknown_key_is_refused(
    tokens: TokenService, accounts: Accounts, clock: Clock
) -> None:
    other = make_service(accounts, KeyRing.of(SigningKey.generate()), clock)
    token = other.issue(ALICE, [repository_scope("acme/app", Action.PULL)], service=SERVICE).jwt
    assert refusal(tokens, token) is TokenRefusal.UNKNOWN_KEY


def test_a_token_without_kid_is_refused(tokens: TokenService, key: SigningKey) -> None:
    claims = claims_of(tokens.issue(ALICE, [], service=SERVICE).jwt)
    token = jwt.encode(claims, key.private_key, algorithm="ES256")
    assert refusal(tokens, token) is TokenRefusal.UNKNOWN_KEY


def test_a_token_for_another_audience_is_refused(
    accounts: Accounts, key: SigningKey, clock: Clock, tokens: TokenService
) -> None:
    other = TokenService(
        accounts, KeyRing.of(key), TokenSettings("other.registry", ISSUER), clock=clock
    )
    token = other.issue(ALICE, [], service="other.registry").jwt
    assert refusal(tokens, token) is TokenRefusal.AUDIENCE


def test_a_token_with_several_audiences_is_refused(tokens: TokenService, key: SigningKey) -> None:
    claims = claims_of(tokens.issue(ALICE, [], service=SERVICE).jwt)
    claims["aud"] = [SERVICE, "other"]
    token = jwt.encode(claims, key.private_key, algorithm="ES256", headers={"kid": key.kid})
    assert refusal(tokens, token) is TokenRefusal.AUDIENCE


def test_a_token_from_another_issuer_is_refused(
    accounts: Accounts, key: SigningKey, clock: Clock, tokens: TokenService
) -> None:
    other = TokenService(accounts, KeyRing.of(key), TokenSettings(SERVICE, "evil"), clock=clock)
    assert refusal(tokens, other.issue(ALICE, [], service=SERVICE).jwt) is TokenRefusal.ISSUER


def test_a_token_scoped_to_another_repository_allows_nothing_here(
    tokens: TokenService,
) -> None:
    token = tokens.issue(ALICE, [repository_scope("acme/admin", Action.ALL)], service=SERVICE).jwt
    grant = tokens.verify(token)
    assert grant.allows("repository", "acme/admin", "push")
    for action in ("pull", "push", "delete", "*"):
        assert not grant.allows("repository", "acme/app", action)
    assert not grant.allows("registry", "catalog", "*")


def test_alg_none_is_refused(tokens: TokenService, key: SigningKey) -> None:
    claims = claims_of(
        tokens.issue(ALICE, [repository_scope("acme/app", Action.PULL)], service=SERVICE).jwt
    )
    for alg in ("none", "None", "NONE"):
        unsigned = forge({"alg": alg, "typ": "JWT", "kid": key.kid}, claims, lambda _: b"")
        assert refusal(tokens, unsigned) is TokenRefusal.ALGORITHM
        assert refusal(tokens, unsigned[: unsigned.rindex(".") + 1]) is TokenRefusal.ALGORITHM


def test_hs256_signed_with_the_public_key_is_refused(tokens: TokenService, key: SigningKey) -> None:
    claims = claims_of(
        tokens.issue(ALICE, [repository_scope("acme/app", Action.PULL)], service=SERVICE).jwt
    )
    public_pem = key.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for alg, digest in (
        ("HS256", hashlib.sha256),
        ("HS384", hashlib.sha384),
        ("HS512", hashlib.sha512),
    ):
        forged = forge(
            {"alg": alg, "typ": "JWT", "kid": key.kid},
            claims,
            lambda data, digest=digest: hmac.new(public_pem, data, digest).digest(),
        )
        assert refusal(tokens, forged) is TokenRefusal.ALGORITHM


def test_an_algorithm_other_than_the_keys_is_refused(accounts: Accounts, clock: Clock) -> None:
    rsa_key = SigningKey.generate("RS256")
    tokens = make_service(accounts, KeyRing.of(rsa_key), clock)
    claims = claims_of(tokens.issue(ALICE, [], service=SERVICE).jwt)
    # The RSA key signing with PS256 is a valid signature, but not the algorithm of this kid.
    token = jwt.encode(claims, rsa_key.private_key, algorithm="PS256", headers={"kid": rsa_key.kid})
    assert refusal(tokens, token) is TokenRefusal.ALGORITHM
    assert tokens.verify(tokens.issue(ALICE, [], service=SERVICE).jwt).principal == ALICE


@pytest.mark.parametrize(
    "token",
    [
        "",
        "not-a-jwt",
        "a.b.c",
        "eyJhbGciOiJFUzI1NiJ9",
        "x" * 20_000,
        "\ud800.\udfff.e30",
    ],
)
def test_malformed_tokens_are_refused(tokens: TokenService, token: str) -> None:
    assert refusal(tokens, token) in (TokenRefusal.MALFORMED, TokenRefusal.ALGORITHM)


def test_a_tampered_payload_is_refused(tokens: TokenService) -> None:
    token = tokens.issue(BOB, [repository_scope("acme/app", Action.PULL)], service=SERVICE).jwt
    header, _payload, signature = token.split(".")
    claims = claims_of(token)
    claims["access"][0]["actions"] = ["pull", "push"]
    tampered = f"{header}.{b64(json.dumps(claims).encode())}.{signature}"
    assert refusal(tokens, tampered) is TokenRefusal.SIGNATURE


@pytest.mark.parametrize(
    "change",
    [
        {"access": "repository:acme/app:pull"},
        {"access": [{"type": "repository", "name": "acme/app", "actions": "pull"}]},
        {"access": [["repository", "acme/app", ["pull"]]]},
        {"context": {"kind": "wizard"}},
        {"context": None},
        {"sub": 7},
        {"exp": "tomorrow"},
    ],
)
def test_signed_tokens_with_malformed_claims_are_refused(
    tokens: TokenService, key: SigningKey, change: dict[str, Any]
) -> None:
    claims = {**claims_of(tokens.issue(ALICE, [], service=SERVICE).jwt), **change}
    token = jwt.encode(claims, key.private_key, algorithm="ES256", headers={"kid": key.kid})
    assert refusal(tokens, token) is TokenRefusal.MALFORMED


@pytest.mark.parametrize("missing", ["exp", "nbf", "iss", "aud", "sub", "access"])
def test_a_required_claim_missing_is_refused(
    tokens: TokenService, key: SigningKey, missing: str
) -> None:
    claims = claims_of(tokens.issue(ALICE, [], service=SERVICE).jwt)
    del claims[missing]
    token = jwt.encode(claims, key.private_key, algorithm="ES256", headers={"kid": key.kid})
    with pytest.raises(InvalidTokenError):
        tokens.verify(token)


def test_verification_needs_no_shared_process_state(
    accounts: Accounts, key: SigningKey, clock: Clock
) -> None:
    """Another worker: a new service over the same keys (its own empty cache) verifies."""
    token = make_service(accounts, KeyRing.of(key), clock).issue(ALICE, [], service=SERVICE).jwt
    assert make_service(Accounts(), KeyRing.of(key), clock).verify(token).principal == ALICE


# -- keys and rotation ---------------------------------------------------------------------


def write_pem(path: Path, key: SigningKey, *, public: bool = False) -> Path:
    if public:
        path.write_bytes(
            key.private_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    else:
        path.write_bytes(key.to_pem())
    return path


def test_rotation_keeps_the_old_key_verifying_until_its_tokens_expire(
    accounts: Accounts, clock: Clock, tmp_path: Path
) -> None:
    old, new = SigningKey.generate(), SigningKey.generate()
    before = make_service(
        accounts, KeyRing.from_files([write_pem(tmp_path / "old.pem", old)]), clock
    )
    old_token = before.issue(
        ALICE, [repository_scope("acme/app", Action.PULL)], service=SERVICE
    ).jwt
    rotated = make_service(
        accounts,
        KeyRing.from_files(
            [
                write_pem(tmp_path / "new.pem", new),
                write_pem(tmp_path / "old.pub", old, public=True),
            ]
        ),
        clock,
    )
    new_token = rotated.issue(ALICE, [], service=SERVICE).jwt
    assert jwt.get_unverified_header(new_token)["kid"] == new.kid
    assert rotated.verify(old_token).allows("repository", "acme/app", "pull")
    clock.now += 361
    assert refusal(rotated, old_token) is TokenRefusal.EXPIRED
    # Once the old key is dropped from the list, its tokens name an unknown key.
    clock.now -= 361
    dropped = make_service(accounts, KeyRing.from_files([tmp_path / "new.pem"]), clock)
    assert refusal(dropped, old_token) is TokenRefusal.UNKNOWN_KEY
    assert dropped.verify(new_token).principal == ALICE


def test_rsa_keys_sign_rs256(accounts: Accounts, clock: Clock, tmp_path: Path) -> None:
    key = SigningKey.generate("RS256")
    ring = KeyRing.from_files([write_pem(tmp_path / "rsa.pem", key)])
    tokens = make_service(accounts, ring, clock)
    token = tokens.issue(ALICE, [], service=SERVICE).jwt
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    assert tokens.verify(token).principal == ALICE


def test_the_kid_is_the_libtrust_fingerprint_of_the_public_key(key: SigningKey) -> None:
    der = key.private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode()
    assert key.kid == ":".join(encoded[i : i + 4] for i in range(0, 48, 4))
    assert len(key.kid.split(":")) == 12


def test_bad_key_files_are_one_clear_config_error(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("hello")
    with pytest.raises(ConfigError, match="not a PEM key"):
        KeyRing.from_files([garbage])
    with pytest.raises(ConfigError, match="No such file"):
        KeyRing.from_files([tmp_path / "missing.pem"])
    public = write_pem(tmp_path / "only.pub", SigningKey.generate(), public=True)
    with pytest.raises(ConfigError, match="must be private"):
        KeyRing.from_files([public])
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    weak = small.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ConfigError, match="2048"):
        load_pem_key(weak, "weak")
    curve = ec.generate_private_key(ec.SECP521R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ConfigError, match="P-256"):
        load_pem_key(curve, "p521")


def test_the_generated_key_is_made_once_and_shared(store: MemoryStore) -> None:
    first = database_key_ring(store)
    second = database_key_ring(store)
    assert first.signing.kid == second.signing.kid
    assert isinstance(load_pem_key(store.secrets["token-signing-key"], "x"), SigningKey)
    assert isinstance(first.verifying[first.signing.kid], VerifyingKey)


# -- refresh tokens ------------------------------------------------------------------------


def test_offline_gives_a_refresh_token_stored_only_hashed(
    tokens: TokenService, store: MemoryStore
) -> None:
    issued = tokens.issue(ALICE, [], service=SERVICE, offline=True, client_id="docker")
    refresh = issued.refresh_token
    assert refresh is not None and refresh.startswith("mrt_") and len(refresh) >= 40
    (record,) = store.refresh.values()
    assert refresh not in record.token_hash and record.subject == ALICE
    assert record.audience == SERVICE and record.client_id == "docker"
    assert tokens.redeem_refresh_token(refresh, service=SERVICE) == ALICE
    assert tokens.issue(ALICE, [], service=SERVICE).refresh_token is None
    assert tokens.issue(ANONYMOUS, [], service=SERVICE, offline=True).refresh_token is None


def test_refresh_tokens_are_bound_to_their_audience_and_revocable(
    tokens: TokenService, accounts: Accounts, store: MemoryStore
) -> None:
    refresh = tokens.issue(ALICE, [], service=SERVICE, offline=True).refresh_token
    assert refresh is not None
    with pytest.raises(InvalidTokenError):
        tokens.redeem_refresh_token(refresh, service="other")
    with pytest.raises(InvalidTokenError):
        tokens.redeem_refresh_token(refresh + "x", service=SERVICE)
    accounts.disabled.add("alice")
    with pytest.raises(InvalidTokenError):
        tokens.redeem_refresh_token(refresh, service=SERVICE)
    accounts.disabled.clear()
    assert tokens.revoke_refresh_token(refresh)
    with pytest.raises(InvalidTokenError):
        tokens.redeem_refresh_token(refresh, service=SERVICE)


def test_without_a_store_there_are_no_refresh_tokens(
    accounts: Accounts, key: SigningKey, clock: Clock
) -> None:
    tokens = make_service(accounts, KeyRing.of(key), clock)
    assert tokens.issue(ALICE, [], service=SERVICE, offline=True).refresh_token is None
    with pytest.raises(InvalidTokenError):
        tokens.redeem_refresh_token("mrt_x", service=SERVICE)


# -- logins and throttling -----------------------------------------------------------------


def make_logins(accounts: Accounts, tokens: TokenService, **throttle: str) -> LoginService:
    return LoginService(accounts, tokens, LoginThrottle(**throttle), success_ttl_s=0)


def test_logins_check_the_authenticator(accounts: Accounts, tokens: TokenService) -> None:
    logins = make_logins(accounts, tokens)
    assert logins.login("alice", "alice-secret-1", client="10.0.0.1") == ALICE
    assert logins.login("alice", "wrong", client="10.0.0.1") is None
    assert logins.login("nobody", "x", client="10.0.0.1") is None


def test_failed_logins_are_throttled_per_account(accounts: Accounts, tokens: TokenService) -> None:
    logins = make_logins(accounts, tokens, per_account="3/minute", per_client="100/minute")
    for address in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):
        assert logins.login("alice", "guess", client=address) is None
    with pytest.raises(TooManyRequestsError) as caught:
        logins.login("alice", "alice-secret-1", client="10.0.0.4")  # even the right password
    assert 1 <= caught.value.retry_after_s <= 60
    assert logins.login("bob", "bob-secret-2", client="10.0.0.4") == BOB


def test_failed_logins_are_throttled_per_client(accounts: Accounts, tokens: TokenService) -> None:
    logins = make_logins(accounts, tokens, per_account="100/minute", per_client="3/minute")
    for name in ("u1", "u2", "u3"):
        assert logins.login(name, "guess", client="10.0.0.9") is None
    with pytest.raises(TooManyRequestsError):
        logins.login("bob", "bob-secret-2", client="10.0.0.9")
    assert logins.login("bob", "bob-secret-2", client="10.0.0.10") == BOB


def test_successful_logins_do_not_count(accounts: Accounts, tokens: TokenService) -> None:
    logins = make_logins(accounts, tokens, per_account="2/minute", per_client="2/minute")
    for _ in range(10):
        assert logins.login("alice", "alice-secret-1", client="10.0.0.1") == ALICE


def test_dollar_token_logs_in_with_one_of_our_tokens(
    accounts: Accounts, tokens: TokenService
) -> None:
    logins = make_logins(accounts, tokens)
    token = tokens.issue(ALICE, [], service=SERVICE).jwt
    assert logins.login("$token", token, client=None) == ALICE
    assert logins.login("$token", token[:-3], client=None) is None
    anonymous = tokens.issue(
        ANONYMOUS, [repository_scope("library/alpine", Action.PULL)], service=SERVICE
    ).jwt
    assert logins.login("$token", anonymous, client=None) is None
    accounts.disabled.add("alice")
    assert logins.login("$token", token, client=None) is None
    assert logins.login("$oauthtoken", "anything", client=None) is None


def test_successful_checks_are_reused_briefly(accounts: Accounts, tokens: TokenService) -> None:
    now = [0.0]
    logins = LoginService(accounts, tokens, LoginThrottle(), success_ttl_s=30, clock=lambda: now[0])
    assert logins.login("alice", "alice-secret-1", client=None) == ALICE
    accounts.disabled.add("alice")
    assert logins.login("alice", "alice-secret-1", client=None) == ALICE  # remembered
    assert logins.login("alice", "alice-secret-2", client=None) is None  # another secret
    now[0] = 31
    assert logins.login("alice", "alice-secret-1", client=None) is None


def test_bad_throttle_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError):
        LoginThrottle(per_account="often")
    with pytest.raises(ConfigError):
        LoginThrottle(storage="nosuch://x")


def test_issued_at_is_utc(tokens: TokenService) -> None:
    issued = tokens.issue(ALICE, [], service=SERVICE)
    assert (
        isinstance(issued.issued_at, datetime) and issued.issued_at.utcoffset().total_seconds() == 0
    )


# -- the SQL store, on both databases --------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def sql_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlTokenStore]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'tokens.db'}"
    else:
        url = request.getfixturevalue("fresh_postgres_url")
    upgrade(url)
    engine = create_database_engine(url)
    try:
        yield SqlTokenStore(Database(engine))
    finally:
        engine.dispose()


def test_the_generated_key_is_shared_by_every_worker(sql_store: SqlTokenStore) -> None:
    """Two workers (two stores on one database) sign with one key; the second's own
    candidate is thrown away."""
    other = SqlTokenStore(sql_store.database)
    first = database_key_ring(sql_store)
    second = database_key_ring(other, "RS256")
    assert second.signing.kid == first.signing.kid and second.signing.algorithm == "ES256"


def test_refresh_tokens_in_the_database(
    sql_store: SqlTokenStore, accounts: Accounts, key: SigningKey, clock: Clock
) -> None:
    tokens = TokenService(
        accounts,
        KeyRing.of(key),
        TokenSettings(SERVICE, ISSUER),
        store=sql_store,
        directory=accounts,
        clock=clock,
    )
    refresh = tokens.issue(
        ALICE, [], service=SERVICE, offline=True, client_id="docker"
    ).refresh_token
    assert refresh is not None
    # Another worker (its own service, same database) redeems it.
    worker = TokenService(
        accounts,
        KeyRing.of(key),
        TokenSettings(SERVICE, ISSUER),
        store=SqlTokenStore(sql_store.database),
    )
    assert worker.redeem_refresh_token(refresh, service=SERVICE) == ALICE
    with sql_store.database.read() as conn:
        rows = conn.execute(select(tables.refresh_token)).all()
    assert len(rows) == 1 and refresh not in repr(rows[0])
    assert rows[0].subject_name == "alice" and rows[0].client_id == "docker"
    second = tokens.issue(ALICE, [], service=SERVICE, offline=True).refresh_token
    assert second is not None
    assert sql_store.revoke_refresh_tokens_of("alice") == 2
    with pytest.raises(InvalidTokenError):
        worker.redeem_refresh_token(refresh, service=SERVICE)


# -- attacker: any change to a token ------------------------------------------------------


@pytest.fixture(scope="module")
def signed() -> tuple[TokenService, str]:
    accounts = Accounts(principals={"bob": BOB}, actions={("bob", "acme/app"): frozenset({"pull"})})
    tokens = TokenService(
        accounts, KeyRing.of(SigningKey.generate()), TokenSettings(SERVICE, ISSUER), clock=Clock()
    )
    issued = tokens.issue(BOB, [repository_scope("acme/app", Action.PULL)], service=SERVICE)
    return tokens, issued.jwt


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_a_changed_token_never_verifies_to_anything_else(
    signed: tuple[TokenService, str], data: st.DataObject
) -> None:
    tokens, token = signed
    original = tokens.verify(token)
    position = data.draw(st.integers(0, len(token) - 1))
    replacement = data.draw(st.text(min_size=0, max_size=3))
    keep_tail = data.draw(st.booleans())
    mutated = token[:position] + replacement + (token[position + 1 :] if keep_tail else "")
    fresh = TokenService(tokens.authorizer, tokens.keys, tokens.settings, clock=tokens.clock)
    try:
        grant = fresh.verify(mutated)
    except InvalidTokenError:
        return
    # Base64 ignores the unused low bits of a last character: such a change decodes to the
    # very same bytes, and so to the same grant.
    assert grant == original
