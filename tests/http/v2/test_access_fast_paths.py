"""The seam's fast paths keep its answers: a pull remembered for ``auth.pull_permission_cache_s``
ends within that bound once revoked, while pushes, a new grant and a disabled namespace take
effect at once; a remembered password admits only the same password.

In-process registry over real accounts (SQLite), as in test_access_seam.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from tests.http.v2.test_access_seam import PASSWORDS, assert_challenged, basic, push_image

from moorage.app import Application, build
from moorage.config import load_settings
from moorage.domain.access import Role
from moorage.domain.accounts import SubjectKind
from moorage.domain.records import Visibility

CACHE_S = 0.5
REPO = "alice/secret"


@pytest.fixture
def secured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Application]:
    monkeypatch.setenv("MOORAGE_AUTH__ENABLED", "true")
    monkeypatch.setenv("MOORAGE_AUTH__PULL_PERMISSION_CACHE_S", str(CACHE_S))
    app = build(load_settings(data_dir=tmp_path / "data"))
    for name, password in PASSWORDS.items():
        app.accounts.create_user(name, password)
    try:
        yield app
    finally:
        app.close()


@pytest.fixture
def client(secured: Application) -> Iterator[TestClient]:
    with TestClient(secured.asgi) as test_client:
        push_image(test_client, REPO, basic("alice", PASSWORDS["alice"]))
        yield test_client


def pull(client: TestClient, headers: dict[str, str] | None = None) -> int:
    return client.get(f"/v2/{REPO}/manifests/v1", headers=headers).status_code


def wait_out_the_cache() -> None:
    time.sleep(CACHE_S + 0.1)


def test_a_revoked_read_grant_ends_within_the_bound(
    client: TestClient, secured: Application
) -> None:
    bob = basic("bob", PASSWORDS["bob"])
    secured.accounts.grant(REPO, SubjectKind.USER, "bob", Role.READ)
    assert pull(client, bob) == 200
    secured.accounts.revoke(REPO, SubjectKind.USER, "bob")
    wait_out_the_cache()
    assert_challenged(
        client.get(f"/v2/{REPO}/manifests/v1", headers=bob),
        f"repository:{REPO}:pull",
        "insufficient_scope",
    )


def test_a_repository_made_private_ends_anonymous_pulls_within_the_bound(
    client: TestClient, secured: Application
) -> None:
    secured.accounts.set_visibility(REPO, Visibility.PUBLIC)
    assert pull(client) == 200
    secured.accounts.set_visibility(REPO, Visibility.PRIVATE)
    wait_out_the_cache()
    assert_challenged(client.get(f"/v2/{REPO}/manifests/v1"), f"repository:{REPO}:pull")


def test_a_remembered_pull_never_admits_a_push_and_a_new_grant_counts_at_once(
    client: TestClient, secured: Application
) -> None:
    bob = basic("bob", PASSWORDS["bob"])
    secured.accounts.grant(REPO, SubjectKind.USER, "bob", Role.READ)
    assert pull(client, bob) == 200  # remembered from here on
    assert_challenged(
        client.post(f"/v2/{REPO}/blobs/uploads/", headers=bob),
        f"repository:{REPO}:pull,push",
        "insufficient_scope",
    )
    secured.accounts.grant(REPO, SubjectKind.USER, "bob", Role.WRITE)
    started = client.post(f"/v2/{REPO}/blobs/uploads/", headers=bob)
    assert started.status_code == 202, started.text
    # Write taken away again: the next push is refused at once, pulls stay within the bound.
    secured.accounts.revoke(REPO, SubjectKind.USER, "bob")
    assert client.post(f"/v2/{REPO}/blobs/uploads/", headers=bob).status_code == 401


def test_a_disabled_namespace_refuses_a_remembered_pull_at_once(
    client: TestClient, secured: Application
) -> None:
    bob = basic("bob", PASSWORDS["bob"])
    secured.accounts.grant(REPO, SubjectKind.USER, "bob", Role.READ)
    secured.accounts.set_visibility(REPO, Visibility.PUBLIC)
    assert pull(client, bob) == 200
    assert pull(client) == 200
    secured.accounts.set_namespace_enabled("alice", False)
    for headers in (bob, None):
        response = client.get(f"/v2/{REPO}/manifests/v1", headers=headers)
        assert response.status_code == 403, response.text
        assert response.json()["errors"][0]["code"] == "DENIED"


def test_a_remembered_password_admits_only_that_password(
    client: TestClient, secured: Application
) -> None:
    secured.accounts.grant(REPO, SubjectKind.USER, "bob", Role.READ)
    assert pull(client, basic("bob", PASSWORDS["bob"])) == 200
    for wrong in (PASSWORDS["bob"] + "x", PASSWORDS["bob"][:-1], PASSWORDS["alice"]):
        assert_challenged(
            client.get(f"/v2/{REPO}/manifests/v1", headers=basic("bob", wrong)),
            None,
            "invalid_token",
        )
    # Another account's name with bob's password is not bob (nor that account).
    assert pull(client, basic("alice", PASSWORDS["bob"])) == 401
