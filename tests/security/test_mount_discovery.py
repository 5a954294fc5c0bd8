"""Mount without ``from`` (OCI 1.1 automatic content discovery), auth on, both databases:
201 only from a repository the caller may read; otherwise a 202 upload revealing nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from tests.http.v2.test_access_seam import CONFIG, PASSWORDS, basic, digest_of, push_image
from tests.support.apps import DATABASES, build_on

from moorage.app import Application
from moorage.domain.access import Role
from moorage.domain.accounts import SubjectKind
from moorage.domain.records import Visibility


@pytest.fixture(params=DATABASES)
def secured(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Application]:
    monkeypatch.setenv("MOORAGE_AUTH__ENABLED", "true")
    app = build_on(request, tmp_path / "data")
    for name, password in PASSWORDS.items():
        app.accounts.create_user(name, password)
    try:
        yield app
    finally:
        app.close()


def test_a_mount_without_from_uses_only_readable_repositories(secured: Application) -> None:
    alice, bob = basic("alice", PASSWORDS["alice"]), basic("bob", PASSWORDS["bob"])
    digest = digest_of(CONFIG)
    with TestClient(secured.asgi) as client:
        push_image(client, "alice/secret", alice)
        model = secured.model
        repo = model.lookup_repository("alice", "secret")
        assert repo is not None
        # Unreadable: an upload session, and bob's repository still lacks the blob.
        refused = client.post(f"/v2/bob/copy/blobs/uploads/?mount={digest}", headers=bob)
        assert refused.status_code == 202, refused.text
        assert "Docker-Content-Digest" not in refused.headers
        assert client.head(f"/v2/bob/copy/blobs/{digest}", headers=bob).status_code == 404
        assert model.find_readable_repository_with_blob(None, digest) is not None
        # Public but in a disabled namespace: read by nobody, an upload.
        secured.accounts.set_visibility("alice/secret", Visibility.PUBLIC)
        secured.accounts.set_namespace_enabled("alice", False)
        gone = client.post(f"/v2/bob/third/blobs/uploads/?mount={digest}", headers=bob)
        assert gone.status_code == 202, gone.text
        secured.accounts.set_namespace_enabled("alice", True)
        secured.accounts.set_visibility("alice/secret", Visibility.PRIVATE)
        # Readable (a grant, then public instead): mounted.
        secured.accounts.grant("alice/secret", SubjectKind.USER, "bob", Role.READ)
        mounted = client.post(f"/v2/bob/copy/blobs/uploads/?mount={digest}", headers=bob)
        assert mounted.status_code == 201, mounted.text
        assert mounted.headers["Location"] == f"/v2/bob/copy/blobs/{digest}"
        assert mounted.headers["Docker-Content-Digest"] == digest
        assert client.head(f"/v2/bob/copy/blobs/{digest}", headers=bob).status_code == 200
        secured.accounts.revoke("alice/secret", SubjectKind.USER, "bob")
        secured.accounts.set_visibility("alice/secret", Visibility.PUBLIC)
        again = client.post(f"/v2/bob/other/blobs/uploads/?mount={digest}", headers=bob)
        assert again.status_code == 201, again.text
        # An unknown or malformed digest: an upload too, never an error.
        for odd in (digest_of(b"nothing"), "sha256:../../etc", "md5:x"):
            response = client.post(f"/v2/bob/fourth/blobs/uploads/?mount={odd}", headers=bob)
            assert response.status_code == 202, (odd, response.text)
