"""The access seam with auth on: every refusal with its status, code and challenge, and
nothing read, written or created by a refused request.

The registry runs in-process over real accounts (SQLite): alice owns ``alice/*``; bob is
another user; the organization ``acme`` has a robot ``acme+ci`` with write on ``acme/app``;
``alice/open`` is public, everything else private (the default).
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from moorage.app import Application, build
from moorage.config import load_settings
from moorage.domain.access import Role
from moorage.domain.accounts import SubjectKind
from moorage.domain.records import Visibility

PASSWORDS = {"alice": "alice-password-1", "bob": "bob-password-22"}
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def basic(user: str, password: str) -> dict[str, str]:
    encoded = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {encoded}"}


def manifest_for(config: bytes) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": digest_of(config),
                "size": len(config),
            },
            "layers": [],
        }
    ).encode()


@pytest.fixture
def secured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Application]:
    monkeypatch.setenv("MOORAGE_AUTH__ENABLED", "true")
    app = build(load_settings(data_dir=tmp_path / "data"))
    accounts = app.accounts
    for name, password in PASSWORDS.items():
        accounts.create_user(name, password)
    accounts.create_organization("acme", admin="alice")
    try:
        yield app
    finally:
        app.close()


@pytest.fixture
def client(secured: Application) -> Iterator[TestClient]:
    with TestClient(secured.asgi) as test_client:
        yield test_client


def push_image(client: TestClient, repo: str, headers: dict[str, str], tag: str = "v1") -> None:
    blob = client.post(
        f"/v2/{repo}/blobs/uploads/?digest={digest_of(CONFIG)}", content=CONFIG, headers=headers
    )
    assert blob.status_code == 201, blob.text
    pushed = client.put(
        f"/v2/{repo}/manifests/{tag}",
        content=manifest_for(CONFIG),
        headers={**headers, "Content-Type": OCI_MANIFEST},
    )
    assert pushed.status_code == 201, pushed.text


def token(client: TestClient, scope: str, headers: dict[str, str] | None = None) -> str:
    response = client.get(
        "/v2/auth", params={"service": "moorage", "scope": scope}, headers=headers
    )
    assert response.status_code == 200, response.text
    value = response.json()["token"]
    assert isinstance(value, str)
    return value


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def assert_challenged(response: object, scope: str | None, error: str | None = None) -> None:
    from httpx import Response

    assert isinstance(response, Response)
    assert response.status_code == 401, response.text
    assert response.json()["errors"][0]["code"] == "UNAUTHORIZED"
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer realm=")
    assert 'service="moorage"' in challenge
    if scope is not None:
        assert f'scope="{scope}"' in challenge
    if error is not None:
        assert f'error="{error}"' in challenge


def catalog_of(secured: Application) -> list[str]:
    return secured.model.list_repository_names(after=None, limit=100)


@pytest.fixture
def alice_repo(client: TestClient, secured: Application) -> str:
    push_image(client, "alice/secret", basic("alice", PASSWORDS["alice"]))
    return "alice/secret"


def test_the_ping_challenges_anonymous_callers_and_admits_credentials(client: TestClient) -> None:
    assert_challenged(client.get("/v2/"), scope=None)
    assert client.get("/v2/", headers=basic("alice", PASSWORDS["alice"])).status_code == 200
    assert_challenged(client.get("/v2/", headers=basic("alice", "wrong")), None, "invalid_token")


def test_a_private_repository_without_credentials_is_challenged(
    client: TestClient, alice_repo: str
) -> None:
    for path in (f"/v2/{alice_repo}/manifests/v1", f"/v2/{alice_repo}/tags/list"):
        assert_challenged(client.get(path), f"repository:{alice_repo}:pull")
    # A missing private name answers exactly the same: existence never leaks.
    assert_challenged(client.get("/v2/alice/nothing/tags/list"), "repository:alice/nothing:pull")


def test_a_wrong_password_is_refused(client: TestClient, alice_repo: str) -> None:
    response = client.get(f"/v2/{alice_repo}/tags/list", headers=basic("alice", "not-it"))
    assert_challenged(response, None, "invalid_token")
    assert (
        client.get(
            "/v2/auth", params={"service": "moorage"}, headers=basic("alice", "x")
        ).status_code
        == 401
    )


def test_another_users_private_repository_is_neither_read_nor_written(
    client: TestClient, secured: Application, alice_repo: str
) -> None:
    bob = basic("bob", PASSWORDS["bob"])
    assert_challenged(
        client.get(f"/v2/{alice_repo}/manifests/v1", headers=bob),
        f"repository:{alice_repo}:pull",
        "insufficient_scope",
    )
    before = catalog_of(secured)
    response = client.post("/v2/alice/planted/blobs/uploads/", headers=bob)
    assert_challenged(response, "repository:alice/planted:pull,push", "insufficient_scope")
    assert catalog_of(secured) == before  # nothing created


def test_read_permission_does_not_push_and_write_does_not_delete_without_admin(
    client: TestClient, secured: Application, alice_repo: str
) -> None:
    secured.accounts.grant(alice_repo, SubjectKind.USER, "bob", Role.READ)
    bob = basic("bob", PASSWORDS["bob"])
    assert client.get(f"/v2/{alice_repo}/manifests/v1", headers=bob).status_code == 200
    assert_challenged(
        client.post(f"/v2/{alice_repo}/blobs/uploads/", headers=bob),
        f"repository:{alice_repo}:pull,push",
        "insufficient_scope",
    )
    assert_challenged(
        client.delete(f"/v2/{alice_repo}/manifests/v1", headers=bob),
        f"repository:{alice_repo}:delete",
        "insufficient_scope",
    )
    assert client.get(f"/v2/{alice_repo}/manifests/v1", headers=bob).status_code == 200


def test_tokens_carry_only_what_was_granted(
    client: TestClient, secured: Application, alice_repo: str
) -> None:
    bob = basic("bob", PASSWORDS["bob"])
    # Down-scoped, not refused: bob's token for alice's repository grants nothing.
    empty = token(client, f"repository:{alice_repo}:pull,push", bob)
    assert_challenged(
        client.get(f"/v2/{alice_repo}/tags/list", headers=bearer(empty)),
        f"repository:{alice_repo}:pull",
        "insufficient_scope",
    )
    # A token for another repository does not open this one.
    alice = basic("alice", PASSWORDS["alice"])
    elsewhere = token(client, "repository:alice/other:pull,push", alice)
    assert_challenged(
        client.get(f"/v2/{alice_repo}/tags/list", headers=bearer(elsewhere)),
        f"repository:{alice_repo}:pull",
        "insufficient_scope",
    )
    own = token(client, f"repository:{alice_repo}:pull", alice)
    assert client.get(f"/v2/{alice_repo}/tags/list", headers=bearer(own)).status_code == 200


def test_forged_and_broken_tokens_are_invalid(client: TestClient, alice_repo: str) -> None:
    alice = basic("alice", PASSWORDS["alice"])
    real = token(client, f"repository:{alice_repo}:pull", alice)
    header, payload, _signature = real.split(".")

    def b64(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    unsigned = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{payload}."
    expired = {**claims, "exp": int(time.time()) - 3600, "nbf": int(time.time()) - 7200}
    other_audience = {**claims, "aud": "another-registry"}
    for forged in (
        unsigned,
        f"{header}.{b64(expired)}.{_signature}",
        f"{header}.{b64(other_audience)}.{_signature}",
        real[:-4] + "AAAA",
        "not-a-token",
    ):
        response = client.get(f"/v2/{alice_repo}/tags/list", headers=bearer(forged))
        assert_challenged(response, None, "invalid_token")


def test_robots_act_only_in_their_own_organization(
    client: TestClient, secured: Application
) -> None:
    robot, secret = secured.accounts.create_robot("acme", "ci")
    push_image(client, "acme/app", basic("alice", PASSWORDS["alice"]))
    secured.accounts.grant("acme/app", SubjectKind.ROBOT, robot.name, Role.WRITE)
    ci = basic(robot.name, secret)
    push_image(client, "acme/app", ci, tag="from-ci")
    push_image(client, "alice/private", basic("alice", PASSWORDS["alice"]))
    assert_challenged(
        client.get("/v2/alice/private/tags/list", headers=ci),
        "repository:alice/private:pull",
        "insufficient_scope",
    )


def test_a_disabled_user_and_a_disabled_namespace_are_refused(
    client: TestClient, secured: Application, alice_repo: str
) -> None:
    secured.accounts.set_user_enabled("bob", False)
    assert_challenged(client.get("/v2/", headers=basic("bob", PASSWORDS["bob"])), None)
    alice = basic("alice", PASSWORDS["alice"])
    live_token = token(client, f"repository:{alice_repo}:pull", alice)
    secured.accounts.set_namespace_enabled("alice", False)
    for headers in (alice, bearer(live_token)):
        response = client.get(f"/v2/{alice_repo}/manifests/v1", headers=headers)
        assert response.status_code == 403, response.text
        assert response.json()["errors"][0]["code"] == "DENIED"
    secured.accounts.set_namespace_enabled("alice", True)
    assert client.get(f"/v2/{alice_repo}/manifests/v1", headers=alice).status_code == 200


def test_a_mount_from_an_unreadable_repository_falls_back_to_an_upload(
    client: TestClient, secured: Application, alice_repo: str
) -> None:
    bob = basic("bob", PASSWORDS["bob"])
    response = client.post(
        f"/v2/bob/stolen/blobs/uploads/?mount={digest_of(CONFIG)}&from={alice_repo}", headers=bob
    )
    assert response.status_code == 202, response.text  # an upload session, nothing revealed
    assert client.head(f"/v2/bob/stolen/blobs/{digest_of(CONFIG)}", headers=bob).status_code == 404
    secured.accounts.grant(alice_repo, SubjectKind.USER, "bob", Role.READ)
    mounted = client.post(
        f"/v2/bob/stolen/blobs/uploads/?mount={digest_of(CONFIG)}&from={alice_repo}", headers=bob
    )
    assert mounted.status_code == 201, mounted.text


def test_the_catalog_lists_only_what_the_caller_may_pull(
    client: TestClient, secured: Application, alice_repo: str
) -> None:
    push_image(client, "alice/open", basic("alice", PASSWORDS["alice"]))
    secured.accounts.set_visibility("alice/open", Visibility.PUBLIC)
    assert_challenged(client.get("/v2/_catalog"), "registry:catalog:*")
    bob = basic("bob", PASSWORDS["bob"])
    assert client.get("/v2/_catalog", headers=bob).json()["repositories"] == ["alice/open"]
    alice = client.get("/v2/_catalog", headers=basic("alice", PASSWORDS["alice"]))
    assert alice.json()["repositories"] == ["alice/open", "alice/secret"]


def test_anonymous_callers_pull_public_repositories_through_the_token_flow(
    client: TestClient, secured: Application
) -> None:
    push_image(client, "alice/open", basic("alice", PASSWORDS["alice"]))
    secured.accounts.set_visibility("alice/open", Visibility.PUBLIC)
    anonymous = token(client, "repository:alice/open:pull,push")
    pulled = client.get("/v2/alice/open/manifests/v1", headers=bearer(anonymous))
    assert pulled.status_code == 200
    assert_challenged(
        client.post("/v2/alice/open/blobs/uploads/", headers=bearer(anonymous)),
        "repository:alice/open:pull,push",
        "insufficient_scope",
    )


def test_an_unknown_repository_is_name_unknown_everywhere_and_is_not_created(
    client: TestClient, secured: Application
) -> None:
    alice = basic("alice", PASSWORDS["alice"])
    before = catalog_of(secured)
    upload = "/v2/alice/ghost/blobs/uploads/0123456789abcdef0123456789abcdef"
    for method, path in (
        ("GET", "/v2/alice/ghost/manifests/v1"),
        ("GET", "/v2/alice/ghost/tags/list"),
        ("GET", f"/v2/alice/ghost/blobs/{digest_of(b'x')}"),
        ("DELETE", "/v2/alice/ghost/manifests/v1"),
        ("DELETE", f"/v2/alice/ghost/blobs/{digest_of(b'x')}"),
        ("GET", upload),
        ("PATCH", upload),
        ("PUT", f"{upload}?digest={digest_of(b'x')}"),
        ("DELETE", upload),
    ):
        response = client.request(method, path, headers=alice)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["errors"][0]["code"] == "NAME_UNKNOWN", (method, path)
    assert catalog_of(secured) == before


def test_a_full_push_and_pull_through_bearer_tokens(client: TestClient) -> None:
    alice = basic("alice", PASSWORDS["alice"])
    push_token = token(client, "repository:acme/web:pull,push", alice)
    push_image(client, "acme/web", bearer(push_token))
    pull_token = token(client, "repository:acme/web:pull", alice)
    pulled = client.get(
        "/v2/acme/web/manifests/v1", headers={**bearer(pull_token), "Accept": OCI_MANIFEST}
    )
    assert pulled.status_code == 200
    assert pulled.content == manifest_for(CONFIG)
