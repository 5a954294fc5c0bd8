"""The access matrix of issue 12 ("What it must show"), one test per case, auth on, over a real
model and storage built by `app.build` (SQLite; PostgreSQL too where marked). Each refused
request is checked for its status, error code and challenge, and for leaving the registry as it
was: the catalog, alice's tags and the files in the data directory (blobs, uploads) unchanged,
and no content in the body."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient
from tests.http.v2.test_access_seam import (
    CONFIG,
    PASSWORDS,
    assert_challenged,
    basic,
    bearer,
    digest_of,
    manifest_for,
    push_image,
    token,
)
from tests.support.apps import DATABASES, build_on

from moorage.app import Application
from moorage.domain.access import Role
from moorage.domain.accounts import SubjectKind
from moorage.http.routes import ROUTES

ALICE = basic("alice", PASSWORDS["alice"])
BOB = basic("bob", PASSWORDS["bob"])
SECRET = "alice/secret"
PULL = f"repository:{SECRET}:pull"
_DATABASE_FILES = re.compile(r"\.(db|sqlite3?)(-wal|-shm|-journal)?$")


@pytest.fixture(params=DATABASES)
def secured(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Application]:
    monkeypatch.setenv("MOORAGE_AUTH__ENABLED", "true")
    app = build_on(request, tmp_path / "data")
    for name, password in PASSWORDS.items():
        app.accounts.create_user(name, password)
    app.accounts.create_organization("acme", admin="alice")
    app.accounts.create_organization("other", admin="bob")
    try:
        yield app
    finally:
        app.close()


@pytest.fixture
def client(secured: Application) -> Iterator[TestClient]:
    with TestClient(secured.asgi) as test_client:
        push_image(test_client, SECRET, ALICE)
        yield test_client


def state(app: Application) -> tuple[object, ...]:
    """What a refused request must leave as it was."""
    data_dir = Path(app.settings.data_dir)
    files = sorted(
        (str(path.relative_to(data_dir)), path.stat().st_size)
        for path in data_dir.rglob("*")
        if path.is_file() and not _DATABASE_FILES.search(path.name)
    )
    repo = app.model.lookup_repository("alice", "secret")
    tags = sorted(t.name for t in app.model.list_repository_tags(repo)) if repo else []
    return (app.model.list_repository_names(after=None, limit=1000), tags, files)


def error_code(response: Any) -> str:
    code = response.json()["errors"][0]["code"]
    assert isinstance(code, str)
    return code


def refused_untouched(
    app: Application,
    client: TestClient,
    method: str,
    path: str,
    headers: dict[str, str],
    **kwargs: Any,
) -> Any:
    before = state(app)
    response = client.request(method, path, headers=headers, **kwargs)
    assert response.status_code in (401, 403, 404, 429), (method, path, response.text)
    assert CONFIG not in response.content
    assert state(app) == before, (method, path)
    return response


def claims_of(value: str) -> dict[str, Any]:
    payload = value.split(".")[1]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return decoded


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# -- the matrix ------------------------------------------------------------------------------


def test_no_credentials_on_a_private_repository(secured: Application, client: TestClient) -> None:
    for method, path in (
        ("GET", f"/v2/{SECRET}/tags/list"),
        ("GET", f"/v2/{SECRET}/manifests/v1"),
        ("GET", f"/v2/{SECRET}/blobs/{digest_of(CONFIG)}"),
    ):
        assert_challenged(refused_untouched(secured, client, method, path, {}), PULL)
    push = refused_untouched(secured, client, "POST", f"/v2/{SECRET}/blobs/uploads/", {})
    assert_challenged(push, f"repository:{SECRET}:pull,push")


def test_a_wrong_password(secured: Application, client: TestClient) -> None:
    wrong = basic("alice", "not-her-password")
    response = refused_untouched(secured, client, "GET", f"/v2/{SECRET}/tags/list", wrong)
    assert_challenged(response, None)
    token_response = client.get(
        "/v2/auth", params={"service": "moorage", "scope": PULL}, headers=wrong
    )
    assert token_response.status_code == 401 and error_code(token_response) == "UNAUTHORIZED"


def test_another_users_private_repository_pull_and_push(
    secured: Application, client: TestClient
) -> None:
    pull = refused_untouched(secured, client, "GET", f"/v2/{SECRET}/manifests/v1", BOB)
    assert_challenged(pull, PULL, "insufficient_scope")
    push = refused_untouched(
        secured,
        client,
        "POST",
        f"/v2/{SECRET}/blobs/uploads/?digest={digest_of(b'x')}",
        BOB,
        content=b"x",
    )
    assert_challenged(push, f"repository:{SECRET}:pull,push", "insufficient_scope")
    # Through the token flow, bob's token carries nothing for alice's repository.
    bob_token = token(client, f"repository:{SECRET}:pull,push", BOB)
    assert claims_of(bob_token)["access"] in (
        [],
        [{"type": "repository", "name": SECRET, "actions": []}],
    )
    assert_challenged(
        refused_untouched(secured, client, "GET", f"/v2/{SECRET}/tags/list", bearer(bob_token)),
        PULL,
        "insufficient_scope",
    )


def test_push_with_read_permission(secured: Application, client: TestClient) -> None:
    secured.accounts.grant(SECRET, SubjectKind.USER, "bob", Role.READ)
    assert client.get(f"/v2/{SECRET}/tags/list", headers=BOB).status_code == 200
    response = refused_untouched(
        secured,
        client,
        "PUT",
        f"/v2/{SECRET}/manifests/v2",
        BOB,
        content=b"{}",
    )
    assert_challenged(response, f"repository:{SECRET}:pull,push", "insufficient_scope")


def test_delete_without_admin(secured: Application, client: TestClient) -> None:
    # Write maps to pull,push (docs/accounts.md): the registry API's DELETE needs admin.
    for role in (Role.READ, Role.WRITE):
        secured.accounts.grant(SECRET, SubjectKind.USER, "bob", role)
        for path in (f"/v2/{SECRET}/manifests/v1", f"/v2/{SECRET}/blobs/{digest_of(CONFIG)}"):
            response = refused_untouched(secured, client, "DELETE", path, BOB)
            assert_challenged(response, f"repository:{SECRET}:delete", "insufficient_scope")
            issued = token(client, f"repository:{SECRET}:pull,push,delete", BOB)
            assert claims_of(issued)["access"][0]["actions"] in (["pull"], ["pull", "push"])
            response = refused_untouched(
                secured, client, "DELETE", path, {"Authorization": f"Bearer {issued}"}
            )
            assert_challenged(response, f"repository:{SECRET}:delete", "insufficient_scope")
    secured.accounts.grant(SECRET, SubjectKind.USER, "bob", Role.ADMIN)
    manifest = digest_of(manifest_for(CONFIG))
    deleted = client.delete(f"/v2/{SECRET}/manifests/{manifest}", headers=BOB)
    assert deleted.status_code == 202, deleted.text


def test_an_expired_token(secured: Application, client: TestClient) -> None:
    real = token(client, PULL, ALICE)
    key = secured.auth.tokens.keys.signing
    claims = {
        **claims_of(real),
        "exp": int(time.time()) - 3600,
        "nbf": int(time.time()) - 7200,
        "iat": int(time.time()) - 7200,
    }
    expired = jwt.encode(
        claims,
        key.private_key,
        algorithm=key.algorithm,  # type: ignore[arg-type]
        headers={"kid": key.kid},
    )
    response = refused_untouched(secured, client, "GET", f"/v2/{SECRET}/tags/list", bearer(expired))
    assert_challenged(response, None, "invalid_token")


def test_a_token_signed_by_another_key(secured: Application, client: TestClient) -> None:
    from moorage.services.tokens import SigningKey

    claims, ours = claims_of(token(client, PULL, ALICE)), secured.auth.tokens.keys.signing
    stranger = SigningKey.generate()
    for kid in (stranger.kid, ours.kid):  # its own kid, or claiming ours
        forged = jwt.encode(
            claims,
            stranger.private_key,
            algorithm="ES256",  # type: ignore[arg-type]
            headers={"kid": kid},
        )
        response = refused_untouched(
            secured, client, "GET", f"/v2/{SECRET}/tags/list", bearer(forged)
        )
        assert_challenged(response, None, "invalid_token")


@pytest.mark.parametrize("claim", ["aud", "iss"])
def test_a_token_for_another_service_or_audience(
    secured: Application, client: TestClient, claim: str
) -> None:
    key = secured.auth.tokens.keys.signing
    claims = {**claims_of(token(client, PULL, ALICE)), claim: "another-registry"}
    forged = jwt.encode(
        claims,
        key.private_key,
        algorithm=key.algorithm,  # type: ignore[arg-type]
        headers={"kid": key.kid},
    )
    response = refused_untouched(secured, client, "GET", f"/v2/{SECRET}/tags/list", bearer(forged))
    assert_challenged(response, None, "invalid_token")
    # The token endpoint mints nothing for another service.
    other = client.get("/v2/auth", params={"service": "another", "scope": PULL}, headers=ALICE)
    assert other.status_code == 400, other.text


def test_a_token_scoped_to_another_repository(secured: Application, client: TestClient) -> None:
    push_image(client, "alice/other", ALICE)
    other = token(client, "repository:alice/other:pull,push,delete", ALICE)
    for method, path in (
        ("GET", f"/v2/{SECRET}/tags/list"),
        ("DELETE", f"/v2/{SECRET}/manifests/v1"),
        ("POST", f"/v2/{SECRET}/blobs/uploads/"),
    ):
        response = refused_untouched(secured, client, method, path, bearer(other))
        assert_challenged(response, None, "insufficient_scope")
    # Names that walk out of the scoped repository are not it.
    for odd in (
        "alice/other/../secret",
        "alice/other/%2e%2e/secret",
        "alice/./secret",
        "alice//secret",
        "alice/other%2f..%2fsecret",
    ):
        response = refused_untouched(secured, client, "GET", f"/v2/{odd}/tags/list", bearer(other))
        assert response.status_code in (401, 404), (odd, response.text)


def test_alg_none_and_hs256_with_the_public_key(secured: Application, client: TestClient) -> None:
    real = token(client, PULL, ALICE)
    header, payload, _ = real.split(".")
    key = secured.auth.tokens.keys.signing
    kid = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"]
    public_pem = key.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    forged = []
    for alg in ("none", "None", "NONE"):
        forged.append(
            f"{b64(json.dumps({'alg': alg, 'typ': 'JWT', 'kid': kid}).encode())}.{payload}."
        )
    for secret in (public_pem, public_pem.strip()):
        head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
        signature = hmac.new(secret, f"{head}.{payload}".encode(), hashlib.sha256).digest()
        forged.append(f"{head}.{payload}.{b64(signature)}")
    for value in forged:
        response = refused_untouched(
            secured, client, "GET", f"/v2/{SECRET}/tags/list", bearer(value)
        )
        assert_challenged(response, None, "invalid_token")


def test_a_disabled_namespace_refuses_pull_and_push_and_deletes_nothing(
    secured: Application, client: TestClient
) -> None:
    alice_token = token(client, f"repository:{SECRET}:pull,push,delete", ALICE)
    secured.accounts.set_namespace_enabled("alice", False)
    for headers in (ALICE, bearer(alice_token)):
        for method, path in (
            ("GET", f"/v2/{SECRET}/manifests/v1"),
            ("GET", f"/v2/{SECRET}/tags/list"),
            ("POST", f"/v2/{SECRET}/blobs/uploads/"),
            ("DELETE", f"/v2/{SECRET}/manifests/v1"),
            ("PUT", "/v2/alice/new/manifests/v1"),
        ):
            response = refused_untouched(secured, client, method, path, headers, content=b"{}")
            assert response.status_code == 403 and error_code(response) == "DENIED", (method, path)
    secured.accounts.set_namespace_enabled("alice", True)
    assert client.get(f"/v2/{SECRET}/manifests/v1", headers=ALICE).status_code == 200


def test_a_robot_of_another_organization(secured: Application, client: TestClient) -> None:
    push_image(client, "acme/app", ALICE)
    robot, secret = secured.accounts.create_robot("other", "ci")
    outsider = basic(robot.name, secret)
    for method, path, scope in (
        ("GET", "/v2/acme/app/tags/list", "repository:acme/app:pull"),
        ("POST", "/v2/acme/app/blobs/uploads/", "repository:acme/app:pull,push"),
    ):
        response = refused_untouched(secured, client, method, path, outsider)
        assert_challenged(response, scope, "insufficient_scope")
    # Even a grant to the robot on acme's repository cannot be given: a robot is its org's only.
    assert claims_of(token(client, "repository:acme/app:pull", outsider))["access"] in (
        [],
        [{"type": "repository", "name": "acme/app", "actions": []}],
    )


def test_a_disabled_user(secured: Application, client: TestClient) -> None:
    secured.accounts.grant(SECRET, SubjectKind.USER, "bob", Role.READ)
    issued = client.get(
        "/v2/auth",
        params={"service": "moorage", "scope": PULL, "offline_token": "true"},
        headers=BOB,
    ).json()
    secured.accounts.set_user_enabled("bob", False)
    # The token issued before and the password the login cache remembers (the token request
    # checked it) name an account that no longer stands: nothing beyond anonymous.
    for credentials, scope in (({"Authorization": f"Bearer {issued['token']}"}, PULL), (BOB, None)):
        response = refused_untouched(
            secured, client, "GET", f"/v2/{SECRET}/manifests/latest", credentials
        )
        assert_challenged(response, scope)
    # A fresh password check (none remembered for this secret) is refused everywhere.
    fresh = basic("bob", PASSWORDS["bob"] + "-not-cached")
    secured.accounts.set_password("bob", PASSWORDS["bob"] + "-not-cached")
    response = refused_untouched(secured, client, "GET", f"/v2/{SECRET}/tags/list", fresh)
    assert_challenged(response, None)
    assert_challenged(refused_untouched(secured, client, "GET", "/v2/", fresh), None)
    denied = client.get("/v2/auth", params={"service": "moorage", "scope": PULL}, headers=fresh)
    assert denied.status_code == 401 and error_code(denied) == "UNAUTHORIZED"
    # Its refresh token is dead; a token issued before lives at most its short lifetime.
    refreshed = client.post(
        "/v2/auth",
        data={
            "grant_type": "refresh_token",
            "refresh_token": issued["refresh_token"],
            "service": "moorage",
            "scope": PULL,
        },
    )
    assert refreshed.status_code in (400, 401), refreshed.text
    assert "token" not in refreshed.json()
    claims = claims_of(issued["token"])
    assert claims["exp"] - claims["iat"] <= secured.settings.auth.token_lifetime_s


@pytest.mark.parametrize("with_from", [True, False])
def test_a_mount_from_an_unreadable_repository(
    secured: Application, client: TestClient, with_from: bool
) -> None:
    digest = digest_of(CONFIG)
    query = f"mount={digest}" + (f"&from={SECRET}" if with_from else "")
    response = client.post(f"/v2/bob/copy/blobs/uploads/?{query}", headers=BOB)
    assert response.status_code == 202, response.text
    assert "Docker-Content-Digest" not in response.headers
    assert "/blobs/uploads/" in response.headers["Location"]
    # Bob's repository still lacks the blob, and alice's is untouched.
    assert client.head(f"/v2/bob/copy/blobs/{digest}", headers=BOB).status_code == 404
    repo = secured.model.lookup_repository("bob", "copy")
    assert repo is not None and secured.model.get_repo_blob_by_digest(repo, digest) is None


def test_the_catalog_hides_private_repositories(secured: Application, client: TestClient) -> None:
    push_image(client, "bob/mine", BOB)
    seen = {
        name: client.get("/v2/_catalog", headers=headers).json()["repositories"]
        for name, headers in (("alice", ALICE), ("bob", BOB))
    }
    assert SECRET in seen["alice"] and SECRET not in seen["bob"]
    assert "bob/mine" in seen["bob"] and "bob/mine" not in seen["alice"]
    anonymous = client.get("/v2/_catalog")
    assert anonymous.status_code == 401 or SECRET not in anonymous.json()["repositories"]
    catalog_token = token(client, "registry:catalog:*", BOB)
    listed = client.get("/v2/_catalog", headers=bearer(catalog_token)).json()["repositories"]
    assert SECRET not in listed


def test_brute_force_is_throttled(secured: Application, client: TestClient) -> None:
    guesses = [
        refused_untouched(
            secured, client, "GET", f"/v2/{SECRET}/tags/list", basic("alice", f"guess-{n}")
        )
        for n in range(12)
    ]
    assert [r.status_code for r in guesses[:10]] == [401] * 10
    response = guesses[-1]
    assert response.status_code == 429 and error_code(response) == "TOOMANYREQUESTS"
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    # Bob, never logged in, is locked out with a right password too while alice's guesses
    # from this address keep coming (30/minute per client).
    for n in range(20):
        client.get("/v2/", headers=basic(f"nobody{n}", "x"))
    assert client.get("/v2/auth", headers=BOB).status_code == 429


def spec_name(method: str, path: str) -> str:
    return next(name for m, p, name in _named_routes() if (m, p) == (method, path))


def _v2_repository_routes() -> list[tuple[str, str]]:
    return [(method, path) for method, path, _ in _named_routes()]


def _named_routes() -> list[tuple[str, str, str]]:
    routes = []
    for spec in ROUTES:
        if "{name:path}" not in spec.path:
            continue
        path = (
            spec.path.replace("{name:path}", "alice/ghost")
            .replace("{reference}", "v1")
            .replace("{digest}", digest_of(b"x"))
            .replace("{upload_id}", "0123456789abcdef0123456789abcdef")
        )
        routes.append((spec.method, path, spec.name))
    return routes


@pytest.mark.parametrize(("method", "path"), _v2_repository_routes())
def test_an_unknown_repository_is_name_unknown_on_every_route(
    secured: Application, client: TestClient, method: str, path: str
) -> None:
    alice_token = token(client, "repository:alice/ghost:pull,push,delete", ALICE)
    if spec_name(method, path) == "v2.referrers":
        # Deliberately 200 and empty: a 404 would tell clients there is no referrers API.
        response = client.get(path, headers=ALICE)
        assert response.status_code == 200 and response.json()["manifests"] == []
        assert secured.model.lookup_repository("alice", "ghost") is None
        return
    if spec_name(method, path) == "c1.webseed":
        # Its credential is the signed URL: an unsigned one is refused before any lookup
        # (404 with torrents off, as here; 403 with them on), whoever asks.
        for headers in (ALICE, bearer(alice_token), {}):
            response = refused_untouched(secured, client, method, path, headers)
            assert response.status_code == 404 and error_code(response) == "NOT_FOUND"
        assert secured.model.lookup_repository("alice", "ghost") is None
        return
    for headers in (ALICE, bearer(alice_token)):
        if method == "POST" or (method == "PUT" and "/manifests/" in path):
            continue  # creating on push is the point of these routes (checked below)
        response = refused_untouched(secured, client, method, path, headers)
        assert response.status_code == 404, response.text
        assert error_code(response) == "NAME_UNKNOWN", (method, path)
    if method == "POST" or (method == "PUT" and "/manifests/" in path):
        # A refused create (bad manifest, or an outsider) creates nothing either.
        for headers in (BOB, {}):
            refused_untouched(secured, client, method, path, headers, content=b"{}")
    assert secured.model.lookup_repository("alice", "ghost") is None


def test_the_route_table_is_covered() -> None:
    methods = {m for m, _ in _v2_repository_routes()}
    assert {"GET", "PUT", "PATCH", "DELETE", "POST"} <= methods
    assert len(_v2_repository_routes()) >= 12


# -- generated attacks -----------------------------------------------------------------------

_WEIRD = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=60)
_SCOPE = st.one_of(
    _WEIRD,
    st.builds(
        lambda n, a: f"repository:{n}:{a}",
        st.one_of(
            st.sampled_from(
                [
                    SECRET,
                    "alice/secret/..",
                    "../alice/secret",
                    "alice/%2e%2e/secret",
                    "ALICE/secret",
                    "alice/secret:x",
                ]
            ),
            _WEIRD,
        ),
        st.one_of(st.sampled_from(["pull", "push", "*", "delete", "pull,push,delete"]), _WEIRD),
    ),
)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(scope=st.lists(_SCOPE, max_size=3), service=st.one_of(st.just("moorage"), _WEIRD))
def test_any_scope_never_errors_and_never_grants_bob_alices_repository(
    client: TestClient, scope: list[str], service: str
) -> None:
    response = client.get("/v2/auth", params={"service": service, "scope": scope}, headers=BOB)
    assert response.status_code < 500, response.text
    if response.status_code != 200:
        return
    value = response.json()["token"]
    for entry in claims_of(value)["access"]:
        if entry["name"] == SECRET or entry["name"].lower() == SECRET:
            assert entry["actions"] == [], entry
    for method, path in (
        ("GET", f"/v2/{SECRET}/tags/list"),
        ("DELETE", f"/v2/{SECRET}/manifests/v1"),
    ):
        assert client.request(method, path, headers=bearer(value)).status_code == 401


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    header=st.one_of(
        _WEIRD,
        st.builds(
            lambda s, v: f"{s} {v}",
            st.sampled_from(["Basic", "Bearer", "basic", "bearer", ""]),
            st.one_of(_WEIRD, st.binary(max_size=40).map(lambda b: base64.b64encode(b).decode())),
        ),
    )
)
def test_any_authorization_header_never_errors_nor_reads(client: TestClient, header: str) -> None:
    try:
        response = client.get(f"/v2/{SECRET}/manifests/v1", headers={"Authorization": header})
    except UnicodeEncodeError:
        return  # not a header a client can send
    assert response.status_code in (400, 401, 429), (header, response.text)
    assert CONFIG not in response.content


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_a_token_with_any_claim_changed_is_refused(client: TestClient, data: st.DataObject) -> None:
    real = token(client, f"repository:{SECRET}:pull", ALICE)
    header, _payload, signature = real.split(".")
    claims = claims_of(real)
    name = data.draw(st.sampled_from(sorted(claims)))
    value = data.draw(st.one_of(st.integers(), _WEIRD, st.none(), st.just([])))
    if claims[name] == value:
        return
    changed = {**claims, name: value}
    forged = f"{header}.{b64(json.dumps(changed).encode())}.{signature}"
    response = client.get(f"/v2/{SECRET}/tags/list", headers=bearer(forged))
    assert_challenged(response, None, "invalid_token")
