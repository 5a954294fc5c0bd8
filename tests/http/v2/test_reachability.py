"""Pulls by digest follow reachability (issue 14), over HTTP on SQLite and PostgreSQL: an
index's children (pushed by digest, as docker buildx pushes them) pull while something
tagged holds them, answer 404 MANIFEST_UNKNOWN once the index's last alive tag is gone
(deleted, moved, expired, or the index deleted by digest), and come back when the tag is
restored from the time machine. Referrers pull as long as their subject does."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from tests.http.v2.helpers import OCI_INDEX, OCI_MANIFEST, error_codes, image, put_manifest
from tests.http.v2.helpers import sha256 as digest_of
from tests.model.conftest import FakeClock

from moorage.app import build
from moorage.config import load_settings

NAME = "devtable/multi"
API = f"/api/v1/repository/{NAME}"


@dataclass
class Registry:
    client: TestClient
    clock: FakeClock

    def push_by_digest(self, body: bytes, media_type: str) -> str:
        digest = digest_of(body)
        response = put_manifest(self.client, NAME, digest, body, media_type)
        assert response.status_code == 201, response.text
        return digest

    def push_tag(self, tag: str, body: bytes, media_type: str) -> str:
        response = put_manifest(self.client, NAME, tag, body, media_type)
        assert response.status_code == 201, response.text
        return digest_of(body)

    def child(self, layer: bytes, arch: str = "amd64") -> tuple[bytes, str]:
        body, media_type = image(self.client, NAME, [layer], media_type=OCI_MANIFEST, arch=arch)
        self.push_by_digest(body, media_type)
        return body, media_type

    def pulls(self, digest: str) -> bool:
        response = self.client.get(
            f"/v2/{NAME}/manifests/{digest}", headers={"Accept": f"{OCI_MANIFEST},{OCI_INDEX}"}
        )
        if response.status_code == 404:
            assert error_codes(response) == ["MANIFEST_UNKNOWN"], response.text
            head = self.client.head(f"/v2/{NAME}/manifests/{digest}")
            assert head.status_code == 404
            return False
        assert response.status_code == 200, response.text
        assert response.headers["Docker-Content-Digest"] == digest
        assert digest_of(response.content) == digest
        return True

    def delete_tag(self, tag: str) -> None:
        response = self.client.delete(f"/v2/{NAME}/manifests/{tag}")
        assert response.status_code == 202, response.text


def index(*children: tuple[bytes, str]) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {
                    "mediaType": media_type,
                    "digest": digest_of(body),
                    "size": len(body),
                    "platform": {"os": "linux", "architecture": f"arch{i}"},
                }
                for i, (body, media_type) in enumerate(children)
            ],
        }
    ).encode()


@pytest.fixture(params=["sqlite", "postgres"])
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Registry]:
    database: dict[str, object] = {}
    if request.param == "postgres":
        database = {"database_url": request.getfixturevalue("fresh_postgres_url")}
        database["auto_migrate"] = True
    app = build(load_settings(data_dir=tmp_path / "data", **database))
    clock = FakeClock()
    app.model.now_ms = clock  # the model's clock: temp tags and expiries pass on demand
    try:
        with TestClient(app.asgi) as client:
            yield Registry(client, clock)
    finally:
        app.close()


def test_a_child_goes_with_its_index_tag_and_comes_back_with_a_restore(
    registry: Registry,
) -> None:
    amd = registry.child(b"amd layer")
    arm = registry.child(b"arm layer", "arm64")
    listing = index(amd, arm)
    top = registry.push_tag("multi", listing, OCI_INDEX)
    children = [digest_of(amd[0]), digest_of(arm[0])]
    assert all(registry.pulls(d) for d in [top, *children])
    registry.delete_tag("multi")
    assert not any(registry.pulls(d) for d in [top, *children])
    registry.clock.advance(3600)  # past the temp tags, within the time machine's window
    restored = registry.client.post(API + "/tag/multi/restore", json={"manifest_digest": top})
    assert restored.status_code == 200, restored.text
    assert all(registry.pulls(d) for d in [top, *children])


def test_nested_indexes(registry: Registry) -> None:
    leaf = registry.child(b"leaf layer")
    inner = index(leaf)
    registry.push_by_digest(inner, OCI_INDEX)
    outer = registry.push_tag("nested", index((inner, OCI_INDEX)), OCI_INDEX)
    digests = [outer, digest_of(inner), digest_of(leaf[0])]
    assert all(registry.pulls(d) for d in digests)
    registry.delete_tag("nested")
    assert not any(registry.pulls(d) for d in digests)


def test_a_shared_child_stays_while_another_index_is_tagged(registry: Registry) -> None:
    shared = registry.child(b"shared layer")
    own = registry.child(b"own layer", "arm64")
    first = registry.push_tag("first", index(shared, own), OCI_INDEX)
    second = registry.push_tag("second", index(shared), OCI_INDEX)
    registry.delete_tag("first")
    assert not registry.pulls(first) and not registry.pulls(digest_of(own[0]))
    assert registry.pulls(second) and registry.pulls(digest_of(shared[0]))
    registry.delete_tag("second")
    assert not registry.pulls(digest_of(shared[0]))


def test_a_child_tagged_itself_stays(registry: Registry) -> None:
    amd = registry.child(b"amd layer")
    top = registry.push_tag("multi", index(amd), OCI_INDEX)
    registry.push_tag("amd-only", *amd)
    registry.delete_tag("multi")
    assert not registry.pulls(top) and registry.pulls(digest_of(amd[0]))


def test_a_moved_index_tag_takes_the_children_with_it(registry: Registry) -> None:
    amd = registry.child(b"amd layer")
    top = registry.push_tag("multi", index(amd), OCI_INDEX)
    other_body, other_type = image(registry.client, NAME, [b"other"], media_type=OCI_MANIFEST)
    other = registry.push_tag("multi", other_body, other_type)
    assert not registry.pulls(top) and not registry.pulls(digest_of(amd[0]))
    assert registry.pulls(other)


def test_an_expired_index_tag_takes_the_children_with_it(registry: Registry) -> None:
    amd = registry.child(b"amd layer")
    top = registry.push_tag("multi", index(amd), OCI_INDEX)
    start = registry.clock.now // 1000
    expiring = registry.client.put(API + "/tag/multi", json={"expiration": start + 3600})
    assert expiring.status_code in (200, 201), expiring.text
    assert registry.pulls(top) and registry.pulls(digest_of(amd[0]))
    registry.clock.advance(3601)
    assert not registry.pulls(top) and not registry.pulls(digest_of(amd[0]))
    assert registry.client.get(f"/v2/{NAME}/manifests/multi").status_code == 404


def test_an_index_deleted_by_digest_takes_the_children_with_it(registry: Registry) -> None:
    amd = registry.child(b"amd layer")
    top = registry.push_tag("multi", index(amd), OCI_INDEX)
    deleted = registry.client.delete(f"/v2/{NAME}/manifests/{top}")
    assert deleted.status_code == 202, deleted.text
    assert not registry.pulls(top) and not registry.pulls(digest_of(amd[0]))
    assert registry.client.get(f"/v2/{NAME}/manifests/multi").status_code == 404


def test_a_referrer_pulls_as_long_as_its_subject(registry: Registry) -> None:
    subject_body, subject_type = image(registry.client, NAME, [b"subject"], media_type=OCI_MANIFEST)
    subject = registry.push_tag("app", subject_body, subject_type)
    empty = b"{}"
    upload = registry.client.post(
        f"/v2/{NAME}/blobs/uploads/?digest={digest_of(empty)}", content=empty
    )
    assert upload.status_code == 201
    descriptor = {
        "mediaType": "application/vnd.oci.empty.v1+json",
        "digest": digest_of(empty),
        "size": 2,
    }
    sbom = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": "application/vnd.example.sbom",
            "config": descriptor,
            "layers": [descriptor],
            "subject": {"mediaType": subject_type, "digest": subject, "size": len(subject_body)},
        }
    ).encode()
    referrer = registry.push_by_digest(sbom, OCI_MANIFEST)
    registry.clock.advance(301)  # past its temp tag
    assert registry.pulls(referrer)
    listed = registry.client.get(f"/v2/{NAME}/referrers/{subject}").json()["manifests"]
    assert [entry["digest"] for entry in listed] == [referrer]
    registry.delete_tag("app")
    assert not registry.pulls(referrer)
