"""The token endpoint in-process (protocol.md §3.3-3.4): GET with Basic or anonymous, POST
with the password and refresh-token grants, throttling, and no secret in logs or bodies.

Accounts are the explicit in-test implementation of the protocols (tests/support).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import jwt
import pytest
from starlette.requests import Request
from starlette.testclient import TestClient

from moorage.app import Application, build
from moorage.config import load_settings
from moorage.db.migrate import upgrade
from moorage.domain.access import CATALOG_SCOPE, Principal, PrincipalKind, Role, parse_scopes
from moorage.domain.accounts import SubjectKind
from moorage.domain.errors import ConfigError, TooManyRequestsError
from moorage.domain.records import Visibility
from moorage.http.app import create_http_app
from moorage.http.auth.challenges import (
    basic_challenge,
    bearer_challenge,
    challenge_for,
    realm_for,
)
from moorage.http.auth.credentials import (
    MalformedCredentialsError,
    WrongCredentialsError,
    basic_principal,
    bearer_token,
)
from moorage.http.context import HttpContext
from moorage.observability import Metrics
from moorage.services.logins import AuthServices, LoginService, LoginThrottle
from moorage.services.tokens import KeyRing, SigningKey, TokenService, TokenSettings
from support.cli import running_server
from support.e2e_clients import free_port
from support.fake_accounts import Accounts, MemoryStore

from .conftest import LogLines

SERVICE = "registry.test"
ALICE_PASSWORD = "correct-horse-battery-9f3b"
BOB_PASSWORD = "bob-Pa55-word-77e1"
ALICE = Principal(PrincipalKind.USER, "alice", 1)
BOB = Principal(PrincipalKind.USER, "bob", 2)
ISSUED_AT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def basic(user: str, password: str) -> dict[str, str]:
    encoded = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {encoded}"}


ALICE_AUTH = basic("alice", ALICE_PASSWORD)


@pytest.fixture
def accounts() -> Accounts:
    return Accounts(
        passwords={"alice": ALICE_PASSWORD, "bob": BOB_PASSWORD},
        principals={"alice": ALICE, "bob": BOB},
        actions={
            ("alice", "acme/app"): frozenset({"pull", "push", "delete"}),
            ("bob", "acme/app"): frozenset({"pull"}),
        },
        public={"library/alpine"},
    )


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey.generate()


def make_auth(accounts: Accounts, key: SigningKey, **throttle: str) -> AuthServices:
    tokens = TokenService(
        accounts,
        KeyRing.of(key),
        TokenSettings(service=SERVICE, issuer="test-issuer"),
        store=MemoryStore(),
        directory=accounts,
    )
    logins = LoginService(accounts, tokens, LoginThrottle(**throttle), success_ttl_s=0)
    return AuthServices(tokens, logins, realm="https://reg.example.com/v2/auth")


def client_for(auth: AuthServices | None) -> TestClient:
    context = HttpContext(metrics=Metrics.create(), auth=auth)
    return TestClient(create_http_app(context))


@pytest.fixture
def auth(accounts: Accounts, key: SigningKey) -> AuthServices:
    return make_auth(accounts, key, per_account="5/minute", per_client="8/minute")


@pytest.fixture
def client(auth: AuthServices) -> Iterator[TestClient]:
    with client_for(auth) as test_client:
        yield test_client


def grant_of(auth: AuthServices, body: dict[str, Any]) -> Any:
    return auth.tokens.verify(body["token"])


def error_code(response: Any) -> str:
    return str(response.json()["errors"][0]["code"])


# -- GET ----------------------------------------------------------------------------------


def test_anonymous_pull_of_a_public_repository(client: TestClient, auth: AuthServices) -> None:
    response = client.get(
        "/v2/auth", params={"service": SERVICE, "scope": "repository:library/alpine:pull,push"}
    )
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token"] == body["access_token"]
    assert body["expires_in"] == 300 and ISSUED_AT.match(body["issued_at"])
    assert "refresh_token" not in body
    grant = grant_of(auth, body)
    assert grant.principal.is_anonymous
    assert grant.allows("repository", "library/alpine", "pull")
    assert not grant.allows("repository", "library/alpine", "push")


def test_anonymous_without_scope_is_401(client: TestClient) -> None:
    response = client.get("/v2/auth", params={"service": SERVICE})
    assert response.status_code == 401 and error_code(response) == "UNAUTHORIZED"
    assert response.headers["www-authenticate"].startswith("Basic realm=")


def test_basic_credentials_get_a_down_scoped_token(client: TestClient, auth: AuthServices) -> None:
    response = client.get(
        "/v2/auth",
        params=[
            ("service", SERVICE),
            ("scope", "repository:acme/app:pull,push repository:acme/other:pull"),
            ("scope", "registry:catalog:*"),
            ("account", "bob"),
            ("client_id", "docker"),
        ],
        headers=basic("bob", BOB_PASSWORD),
    )
    assert response.status_code == 200, response.text
    grant = grant_of(auth, response.json())
    assert grant.principal == BOB
    assert grant.allows("repository", "acme/app", "pull")
    assert not grant.allows("repository", "acme/app", "push")
    assert not grant.allows("repository", "acme/other", "pull")
    assert grant.allows("registry", "catalog", "*")


def test_a_login_only_token_for_docker_login(client: TestClient, auth: AuthServices) -> None:
    response = client.get(
        "/v2/auth",
        params={
            "service": SERVICE,
            "account": "alice",
            "offline_token": "true",
            "client_id": "docker",
        },
        headers=ALICE_AUTH,
    )
    assert response.status_code == 200
    body = response.json()
    assert body["refresh_token"].startswith("mrt_")
    assert grant_of(auth, body).access == ()


@pytest.mark.parametrize(
    ("headers", "params"),
    [
        (basic("alice", "wrong"), {}),
        (basic("nobody", "x"), {}),
        (basic("alice", ""), {}),
        (ALICE_AUTH, {"account": "bob"}),
        ({"Authorization": "Basic !!notbase64"}, {}),
        ({"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()}, {}),
        ({"Authorization": "Basic " + base64.b64encode(b"\xff\xfe:x").decode()}, {}),
    ],
)
def test_wrong_credentials_are_401_never_an_anonymous_token(
    client: TestClient, headers: dict[str, str], params: dict[str, str]
) -> None:
    response = client.get(
        "/v2/auth",
        params={"service": SERVICE, "scope": "repository:library/alpine:pull", **params},
        headers=headers,
    )
    assert response.status_code == 401 and error_code(response) == "UNAUTHORIZED"
    assert "token" not in response.json()
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    "scope", ["repository", "repository:acme/app", "Repo:acme/app:pull", "a:b:pu$h", ":x:pull"]
)
def test_bad_scope_syntax_is_400(client: TestClient, scope: str) -> None:
    response = client.get("/v2/auth", params={"service": SERVICE, "scope": scope})
    assert response.status_code == 400 and error_code(response) == "INVALID_REQUEST"


def test_another_service_is_400(client: TestClient) -> None:
    response = client.get(
        "/v2/auth", params={"service": "evil.example", "scope": "repository:library/alpine:pull"}
    )
    assert response.status_code == 400


def test_without_a_token_service_the_endpoint_is_404() -> None:
    with client_for(None) as client:
        assert client.get("/v2/auth").status_code == 404
        assert client.post("/v2/auth").status_code == 404


# -- POST ---------------------------------------------------------------------------------


def post(client: TestClient, **fields: str) -> Any:
    return client.post("/v2/auth", data=fields)


def test_password_grant_with_offline_access(client: TestClient, auth: AuthServices) -> None:
    response = post(
        client,
        grant_type="password",
        username="alice",
        password=ALICE_PASSWORD,
        service=SERVICE,
        client_id="containerd-client",
        access_type="offline",
        scope="repository:acme/app:pull,push repository:acme/nope:pull",
    )
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["scope"] == "repository:acme/app:pull,push"
    assert body["access_token"] == body["token"] and body["expires_in"] == 300
    assert ISSUED_AT.match(body["issued_at"]) and body["refresh_token"].startswith("mrt_")
    assert grant_of(auth, body).allows("repository", "acme/app", "push")


def test_refresh_grant_issues_tokens_for_the_subject(
    client: TestClient, auth: AuthServices
) -> None:
    refresh = client.get(
        "/v2/auth", params={"service": SERVICE, "offline_token": "true"}, headers=ALICE_AUTH
    ).json()["refresh_token"]
    response = post(
        client,
        grant_type="refresh_token",
        refresh_token=refresh,
        service=SERVICE,
        client_id="docker",
        scope="repository:acme/app:push",
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["scope"] == "repository:acme/app:push" and "refresh_token" not in body
    assert grant_of(auth, body).principal == ALICE
    # Bound to its audience; gone once revoked.
    other = post(client, grant_type="refresh_token", refresh_token=refresh, service="other")
    assert other.status_code == 401
    assert auth.tokens.revoke_refresh_token(refresh)
    again = post(client, grant_type="refresh_token", refresh_token=refresh, service=SERVICE)
    assert again.status_code == 401 and error_code(again) == "UNAUTHORIZED"


def test_refresh_tokens_of_a_disabled_account_stop_working(
    client: TestClient, accounts: Accounts
) -> None:
    refresh = client.get(
        "/v2/auth", params={"service": SERVICE, "offline_token": "true"}, headers=ALICE_AUTH
    ).json()["refresh_token"]
    accounts.disabled.add("alice")
    response = post(client, grant_type="refresh_token", refresh_token=refresh, service=SERVICE)
    assert response.status_code == 401


@pytest.mark.parametrize(
    "fields",
    [
        {"grant_type": "password", "username": "alice", "password": "wrong"},
        {"grant_type": "refresh_token", "refresh_token": "mrt_unknown"},
        {"grant_type": "refresh_token", "refresh_token": "x" * 5000},
    ],
)
def test_post_refusals_are_401(client: TestClient, fields: dict[str, str]) -> None:
    response = post(client, service=SERVICE, client_id="t", **fields)
    assert response.status_code == 401 and error_code(response) == "UNAUTHORIZED"


@pytest.mark.parametrize(
    "fields",
    [
        {"grant_type": "authorization_code", "code": "x"},
        {},
        {"grant_type": "password", "username": "alice"},
        {"grant_type": "refresh_token"},
        {"grant_type": "password", "username": "a", "password": "b", "scope": "bad-scope"},
    ],
)
def test_post_bad_requests_are_400(client: TestClient, fields: dict[str, str]) -> None:
    assert post(client, service=SERVICE, **fields).status_code == 400


def test_post_must_be_a_form(client: TestClient) -> None:
    json_body = client.post("/v2/auth", json={"grant_type": "password"})
    assert json_body.status_code == 400
    huge = client.post(
        "/v2/auth",
        content=b"a=" + b"x" * 70_000,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert huge.status_code == 400


def test_dollar_token_username(client: TestClient, auth: AuthServices) -> None:
    token = client.get("/v2/auth", params={"service": SERVICE}, headers=ALICE_AUTH).json()["token"]
    response = client.get(
        "/v2/auth",
        params={"service": SERVICE, "scope": "repository:acme/app:pull"},
        headers=basic("$token", token),
    )
    assert response.status_code == 200
    assert grant_of(auth, response.json()).principal == ALICE


# -- throttling ---------------------------------------------------------------------------


def test_brute_force_on_one_account_is_throttled(client: TestClient) -> None:
    for attempt in range(5):
        assert client.get("/v2/auth", headers=basic("alice", f"guess{attempt}")).status_code == 401
    response = client.get("/v2/auth", headers=ALICE_AUTH)  # now even the right password waits
    assert response.status_code == 429 and error_code(response) == "TOOMANYREQUESTS"
    assert 1 <= int(response.headers["retry-after"]) <= 60
    form = post(client, grant_type="password", username="alice", password=ALICE_PASSWORD)
    assert form.status_code == 429
    # Another account from the same address is not locked out by alice's failures alone.
    assert client.get("/v2/auth", headers=basic("bob", BOB_PASSWORD)).status_code == 200


def test_brute_force_from_one_address_is_throttled(client: TestClient) -> None:
    for attempt in range(8):
        response = post(client, grant_type="password", username=f"user{attempt}", password="x")
        assert response.status_code == 401
    assert client.get("/v2/auth", headers=basic("bob", BOB_PASSWORD)).status_code == 429


# -- secrets stay secret ------------------------------------------------------------------


def test_no_password_token_or_refresh_token_in_logs_or_bodies(
    accounts: Accounts, key: SigningKey, log_lines: LogLines
) -> None:
    auth = make_auth(accounts, key, per_account="3/minute")
    wrong = "Wr0ng-Guess-Unique-5150"
    bodies: list[str] = []
    with client_for(auth) as client:
        for _ in range(4):  # the last one throttled
            bodies.append(client.get("/v2/auth", headers=basic("alice", wrong)).text)
            bodies.append(
                post(client, grant_type="password", username="carol", password=wrong).text
            )
        good = client.get(
            "/v2/auth",
            params={"service": SERVICE, "offline_token": "true", "account": "bob"},
            headers=basic("bob", BOB_PASSWORD),
        )
        refresh = good.json()["refresh_token"]
        refreshed = post(client, grant_type="refresh_token", refresh_token=refresh, service=SERVICE)
        bodies.append(post(client, grant_type="refresh_token", refresh_token=refresh + "x").text)
        bodies.append(
            client.get("/v2/auth", headers=basic("$token", good.json()["token"] + "x")).text
        )
    assert refreshed.status_code == 200
    secrets_sent = [wrong, BOB_PASSWORD, refresh, good.json()["token"], refreshed.json()["token"]]
    logged = "\n".join(str(line) for line in log_lines())
    assert "login failed" in logged and "alice" in logged  # the account is logged, not secrets
    for secret in secrets_sent:
        assert secret not in logged
        for body in bodies:
            assert secret not in body
    for user, password in (("alice", wrong), ("bob", BOB_PASSWORD)):
        assert base64.b64encode(f"{user}:{password}".encode()).decode() not in logged


# -- challenges and realm -----------------------------------------------------------------


def test_bearer_challenge_quotes_every_value_and_joins_scopes() -> None:
    scopes = parse_scopes(["repository:acme/app:pull,push", "repository:acme/base:pull"])
    assert bearer_challenge("https://r.example/v2/auth", "r.example", scopes) == (
        'Bearer realm="https://r.example/v2/auth",service="r.example",'
        'scope="repository:acme/app:pull,push repository:acme/base:pull"'
    )
    assert bearer_challenge("https://r/v2/auth", "r", ["registry:catalog:*"], "invalid_token") == (
        'Bearer realm="https://r/v2/auth",service="r",scope="registry:catalog:*",'
        'error="invalid_token"'
    )
    assert bearer_challenge("https://r/a", 'we"ird\\', ()) == (
        'Bearer realm="https://r/a",service="we\\"ird\\\\"'
    )
    assert "\r" not in bearer_challenge("https://r/a", "x\r\nSet-Cookie: y")
    assert basic_challenge() == 'Basic realm="Moorage"'


def request_with(host: str, server: tuple[str, int] = ("10.1.2.3", 5000)) -> Request:
    return Request(
        {
            "type": "http",
            "method": "GET",
            "scheme": "http",
            "path": "/v2/",
            "raw_path": b"/v2/",
            "query_string": b"",
            "headers": [(b"host", host.encode())],
            "server": server,
        }
    )


def test_realm_is_the_configured_url_whatever_the_host_header() -> None:
    configured = "https://reg.example.com/v2/auth"
    assert realm_for(request_with("evil.example"), configured) == configured


def test_unconfigured_realm_follows_only_a_loopback_host() -> None:
    assert realm_for(request_with("localhost:5000"), None) == "http://localhost:5000/v2/auth"
    assert realm_for(request_with("127.0.0.1:8080"), None) == "http://127.0.0.1:8080/v2/auth"
    assert realm_for(request_with("[::1]:5000"), None) == "http://[::1]:5000/v2/auth"
    # A forged remote Host header never becomes the realm: the server's own address does.
    assert realm_for(request_with("evil.example"), None) == "http://10.1.2.3:5000/v2/auth"


# -- the real accounts (helper G's services) through app.build, on both databases ----------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def real_app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Application]:
    overrides: dict[str, Any] = {"data_dir": tmp_path / "data"}
    if request.param == "postgres":
        url = request.getfixturevalue("fresh_postgres_url")
        upgrade(url)
        overrides["database_url"] = url
    application = build(load_settings(**overrides))
    try:
        yield application
    finally:
        application.close()


def _populate(application: Application) -> str:
    accounts = application.accounts
    accounts.create_user("alice", ALICE_PASSWORD)
    accounts.create_user("bob", BOB_PASSWORD)
    accounts.create_organization("acme", admin="alice")
    model = application.model
    assert model.create_repository("acme", "app") is not None
    assert model.create_repository("acme", "public") is not None
    accounts.set_visibility("acme/public", Visibility.PUBLIC)
    accounts.grant("acme/app", SubjectKind.USER, "bob", Role.READ)
    _robot, secret = accounts.create_robot("acme", "ci")
    accounts.grant("acme/app", SubjectKind.ROBOT, "acme+ci", Role.WRITE)
    return secret


def test_the_token_flow_over_the_real_accounts(real_app: Application) -> None:
    robot_secret = _populate(real_app)
    tokens = real_app.auth.tokens
    service = real_app.settings.auth.service
    scope = "repository:acme/app:pull,push"
    with TestClient(real_app.asgi) as client:

        def get(headers: dict[str, str], **params: str) -> Any:
            return client.get("/v2/auth", params={"service": service, **params}, headers=headers)

        reader = get(basic("bob", BOB_PASSWORD), scope=scope)
        assert reader.status_code == 200, reader.text
        grant = tokens.verify(reader.json()["token"])
        assert grant.allows("repository", "acme/app", "pull")
        assert not grant.allows("repository", "acme/app", "push")  # down-scoped, not refused
        admin = tokens.verify(get(ALICE_AUTH, scope="repository:acme/app:*").json()["token"])
        assert admin.allows("repository", "acme/app", "delete")
        robot = get(basic("acme+ci", robot_secret), scope=scope)
        assert tokens.verify(robot.json()["token"]).allows("repository", "acme/app", "push")
        anonymous = tokens.verify(
            get({}, scope="repository:acme/public:pull repository:acme/app:pull").json()["token"]
        )
        assert anonymous.allows("repository", "acme/public", "pull")
        assert not anonymous.allows("repository", "acme/app", "pull")
        assert get(basic("bob", "wrong"), scope=scope).status_code == 401
        catalog = get(basic("bob", BOB_PASSWORD), scope="registry:catalog:*").json()["token"]
        assert tokens.verify(catalog).access == (CATALOG_SCOPE,)
        anonymous_catalog = get({}, scope="registry:catalog:*").json()["token"]
        assert tokens.verify(anonymous_catalog).access == ()
        # docker login, then the identity token on another "worker" (same database).
        # Free text the database cannot hold (PostgreSQL refuses NUL) is cleaned, not a 500.
        odd = client.get(
            f"/v2/auth?service={service}&offline_token=true&client_id=" + "a%00b%ED%B3%BF%FF" * 200,
            headers=basic("bob", BOB_PASSWORD),
        )
        assert odd.status_code == 200, odd.text
        login = get(basic("alice", ALICE_PASSWORD), offline_token="true", client_id="docker")
        refresh = login.json()["refresh_token"]
        refreshed = client.post(
            "/v2/auth",
            data={"grant_type": "refresh_token", "refresh_token": refresh, "service": service},
        )
        assert refreshed.status_code == 200
        assert tokens.verify(refreshed.json()["access_token"]).principal.name == "alice"
        # A disabled account: its refresh token and its access tokens log nobody in.
        access = refreshed.json()["access_token"]
        real_app.accounts.set_user_enabled("alice", False)
        again = client.post(
            "/v2/auth",
            data={"grant_type": "refresh_token", "refresh_token": refresh, "service": service},
        )
        assert again.status_code == 401
        assert get(basic("$token", access), scope=scope).status_code == 401
        real_app.accounts.set_user_enabled("alice", True)
    other_worker = build(real_app.settings)
    try:
        token = refreshed.json()["access_token"]
        assert other_worker.auth.tokens.verify(token).principal.name == "alice"
        assert other_worker.auth.tokens.keys.signing.kid == tokens.keys.signing.kid
    finally:
        other_worker.close()


def test_challenge_for_a_request_names_the_realm_and_service(auth: AuthServices) -> None:
    challenge = challenge_for(request_with("evil.example"), auth, ["repository:acme/app:pull"])
    assert challenge == (
        'Bearer realm="https://reg.example.com/v2/auth",service="registry.test",'
        'scope="repository:acme/app:pull"'
    )


# -- Basic auth on the registry API (what the access seam calls) ----------------------------


def request_with_authorization(value: str | None) -> Request:
    headers = [] if value is None else [(b"authorization", value.encode("latin-1"))]
    return Request(
        {
            "type": "http",
            "method": "GET",
            "scheme": "http",
            "path": "/v2/",
            "raw_path": b"/v2/",
            "query_string": b"",
            "headers": headers,
            "client": ("10.9.8.7", 40000),
        }
    )


def test_basic_principal_for_the_seam(auth: AuthServices) -> None:
    def principal(value: str | None) -> Principal | None:
        return anyio.run(basic_principal, request_with_authorization(value), auth.logins)

    assert principal(None) is None
    assert principal("Bearer abc") is None  # not Basic: the seam reads it as a token
    assert principal(ALICE_AUTH["Authorization"]) == ALICE
    with pytest.raises(MalformedCredentialsError):
        principal("Basic %%%")
    for _ in range(5):
        with pytest.raises(WrongCredentialsError):
            principal(basic("alice", "guess")["Authorization"])
    with pytest.raises(TooManyRequestsError):
        principal(basic("alice", "guess")["Authorization"])
    token = auth.tokens.issue(ALICE, [], service=SERVICE).jwt
    assert bearer_token(request_with_authorization(f"Bearer {token}")) == token
    assert bearer_token(request_with_authorization("Basic x")) is None


def test_configured_key_files_sign_and_a_bad_one_stops_the_start(tmp_path: Path) -> None:
    new, old = SigningKey.generate(), SigningKey.generate("RS256")
    (tmp_path / "new.pem").write_bytes(new.to_pem())
    (tmp_path / "old.pem").write_bytes(old.to_pem())
    keys = [str(tmp_path / "new.pem"), str(tmp_path / "old.pem")]
    application = build(load_settings(data_dir=tmp_path / "data", auth={"keys": keys}))
    try:
        ring = application.auth.tokens.keys
        assert ring.signing.kid == new.kid and set(ring.verifying) == {new.kid, old.kid}
        with TestClient(application.asgi) as client:
            response = client.get("/v2/auth", params={"scope": "repository:a/b:pull"})
        token = response.json()["token"]
        assert application.auth.tokens.verify(token).principal.is_anonymous
    finally:
        application.close()
    (tmp_path / "broken.pem").write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n")
    with pytest.raises(ConfigError, match=r"broken\.pem"):
        build(
            load_settings(data_dir=tmp_path / "data", auth={"keys": [str(tmp_path / "broken.pem")]})
        )


def test_auth_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MOORAGE_AUTH__ENABLED", raising=False)  # the suite runs open by default
    monkeypatch.setenv("MOORAGE_AUTH__SERVICE", "reg.example.com")
    monkeypatch.setenv("MOORAGE_AUTH__REALM", "https://reg.example.com/v2/auth")
    monkeypatch.setenv("MOORAGE_AUTH__LOGIN_LIMIT_PER_ACCOUNT", "5/second")
    settings = load_settings()
    assert settings.auth.service == "reg.example.com"
    assert settings.auth.realm == "https://reg.example.com/v2/auth"
    assert settings.auth.token_lifetime_s == 300 and settings.auth.enabled
    monkeypatch.setenv("MOORAGE_AUTH__REALM", "/v2/auth")
    monkeypatch.setenv("MOORAGE_AUTH__TOKEN_LIFETIME_S", "5")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "auth.realm" in str(caught.value) and "auth.token_lifetime_s" in str(caught.value)


# -- two real servers on one database: no shared process state -----------------------------


@pytest.mark.slow
def test_tokens_from_one_server_work_on_another(tmp_path: Path) -> None:
    """Two ``moorage serve`` processes (two workers each) on one data directory: both sign
    with the one generated key; an access token (``$token`` makes the server verify it) and
    a refresh token from one are honoured by the other."""
    env = {
        "MOORAGE_DATA_DIR": str(tmp_path / "data"),
        "MOORAGE_INITIAL_SUPERUSER": "admin",
        "MOORAGE_INITIAL_SUPERUSER_PASSWORD": ALICE_PASSWORD,
    }
    admin = basic("admin", ALICE_PASSWORD)
    with (
        running_server("--workers", "2", port=free_port(), env=env) as first,
        running_server("--workers", "2", port=free_port(), env=env) as second,
    ):
        kids = set()
        tokens: dict[str, str] = {}
        for base in (first, second) * 4:
            response = httpx.get(
                f"{base}/v2/auth",
                params={"service": "moorage", "offline_token": "true"},
                headers={**admin, "Connection": "close"},
            )
            assert response.status_code == 200, response.text
            kids.add(jwt.get_unverified_header(response.json()["token"])["kid"])
            tokens[base] = response.json()["token"]
            tokens[base + "#refresh"] = response.json()["refresh_token"]
        assert len(kids) == 1
        for here, there in ((first, second), (second, first)):
            for _ in range(4):  # fresh connections: both workers of the other server
                login = httpx.get(
                    f"{there}/v2/auth",
                    params={"scope": "registry:catalog:*"},
                    headers={**basic("$token", tokens[here]), "Connection": "close"},
                )
                assert login.status_code == 200, login.text
            refreshed = httpx.post(
                f"{there}/v2/auth",
                data={"grant_type": "refresh_token", "refresh_token": tokens[here + "#refresh"]},
            )
            assert refreshed.status_code == 200, refreshed.text
