"""tags/list, _catalog and referrers: ordering, paging, Link, filters."""

from __future__ import annotations

import json

import pytest
from starlette.testclient import TestClient
from tests.http.v2.helpers import OCI_MANIFEST, error_codes, image, put_manifest, sha256, upload

NAME = "acme/app"
TAGS = ["10", "9", "B", "_x", "a", "b", "latest"]


@pytest.fixture
def tagged(client: TestClient) -> bytes:
    body, media_type = image(client, NAME, [b"x"])
    for tag in TAGS:
        assert put_manifest(client, NAME, tag, body, media_type).status_code == 201
    return body


def test_tags_are_listed_bytewise(client: TestClient, tagged: bytes) -> None:
    response = client.get(f"/v2/{NAME}/tags/list")
    assert response.json() == {"name": NAME, "tags": sorted(TAGS)}
    assert "Link" not in response.headers
    assert response.headers["Content-Type"] == "application/json"


def test_tags_paging_follows_link(client: TestClient, tagged: bytes) -> None:
    seen: list[str] = []
    url = f"/v2/{NAME}/tags/list?n=3"
    while url:
        response = client.get(url)
        page = response.json()["tags"]
        assert len(page) <= 3
        seen += page
        link = response.headers.get("Link")
        url = link[1 : link.index(">")] if link else ""
        if link:
            assert link.endswith('>; rel="next"') and len(page) == 3
    assert seen == sorted(TAGS)


def test_tags_last_without_n_and_n_zero(client: TestClient, tagged: bytes) -> None:
    assert client.get(f"/v2/{NAME}/tags/list?last=a").json()["tags"] == ["b", "latest"]
    zero = client.get(f"/v2/{NAME}/tags/list?n=0")
    assert zero.json()["tags"] == [] and "Link" not in zero.headers
    exact = client.get(f"/v2/{NAME}/tags/list?n=2")
    assert exact.json()["tags"] == sorted(TAGS)[:2]


@pytest.mark.parametrize("n", ["-1", "abc", "1.5"])
def test_bad_n(client: TestClient, tagged: bytes, n: str) -> None:
    response = client.get(f"/v2/{NAME}/tags/list?n={n}")
    assert response.status_code == 400 and error_codes(response) == ["PAGINATION_NUMBER_INVALID"]


def test_huge_n_is_capped_with_a_link(client: TestClient, tagged: bytes) -> None:
    response = client.get(f"/v2/{NAME}/tags/list?n={2**63 - 1}")
    assert response.status_code == 200 and response.json()["tags"] == sorted(TAGS)


def test_deleted_tags_vanish_and_unknown_repository(client: TestClient, tagged: bytes) -> None:
    client.delete(f"/v2/{NAME}/manifests/latest")
    assert "latest" not in client.get(f"/v2/{NAME}/tags/list").json()["tags"]
    response = client.get("/v2/acme/none/tags/list")
    assert response.status_code == 404 and error_codes(response) == ["NAME_UNKNOWN"]


def test_repository_named_like_a_route(client: TestClient) -> None:
    body, media_type = image(client, "acme/blobs", [b"y"])
    put_manifest(client, "acme/blobs", "t", body, media_type)
    assert client.get("/v2/acme/blobs/tags/list").json() == {"name": "acme/blobs", "tags": ["t"]}


def test_catalog(client: TestClient) -> None:
    for name in ("zeta/app", "acme/app", "acme/team/tool"):
        upload(client, name, b"x")
    full = client.get("/v2/_catalog").json()["repositories"]
    assert full == ["acme/app", "acme/team/tool", "zeta/app"]
    first = client.get("/v2/_catalog?n=2")
    assert first.json()["repositories"] == ["acme/app", "acme/team/tool"]
    assert "last=acme%2Fteam%2Ftool" in first.headers["Link"]
    assert client.get("/v2/_catalog?n=2&last=acme/team/tool").json()["repositories"] == ["zeta/app"]


def _referrer(
    client: TestClient, subject: bytes, artifact_type: str, note: str
) -> tuple[bytes, str]:
    empty = upload(client, NAME, b"{}")
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": {
                "mediaType": "application/vnd.oci.empty.v1+json",
                "digest": empty,
                "size": 2,
            },
            "layers": [
                {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2}
            ],
            "subject": {
                "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "digest": sha256(subject),
                "size": len(subject),
            },
            "annotations": {"note": note},
        }
    ).encode()
    response = put_manifest(client, NAME, sha256(body), body, OCI_MANIFEST)
    assert response.status_code == 201
    assert response.headers["OCI-Subject"] == sha256(subject)
    return body, sha256(body)


def test_referrers(client: TestClient, tagged: bytes) -> None:
    sbom, sbom_digest = _referrer(client, tagged, "application/vnd.example.sbom", "one")
    _sig, sig_digest = _referrer(client, tagged, "application/vnd.example.sig", "two")
    response = client.get(f"/v2/{NAME}/referrers/{sha256(tagged)}")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/vnd.oci.image.index.v1+json"
    index = response.json()
    assert index["schemaVersion"] == 2 and index["mediaType"].endswith("index.v1+json")
    assert [m["digest"] for m in index["manifests"]] == [sbom_digest, sig_digest]
    assert index["manifests"][0] == {
        "mediaType": OCI_MANIFEST,
        "digest": sbom_digest,
        "size": len(sbom),
        "artifactType": "application/vnd.example.sbom",
        "annotations": {"note": "one"},
    }
    filtered = client.get(
        f"/v2/{NAME}/referrers/{sha256(tagged)}?artifactType=application/vnd.example.sig"
    )
    assert filtered.headers["OCI-Filters-Applied"] == "artifactType"
    assert [m["digest"] for m in filtered.json()["manifests"]] == [sig_digest]
    client.delete(f"/v2/{NAME}/manifests/{sig_digest}")
    after = client.get(f"/v2/{NAME}/referrers/{sha256(tagged)}").json()["manifests"]
    assert [m["digest"] for m in after] == [sbom_digest]


def test_referrers_of_unknown_things_are_empty_not_404(client: TestClient) -> None:
    zeros = "sha256:" + "0" * 64
    for name in (NAME, "acme/never"):
        response = client.get(f"/v2/{name}/referrers/{zeros}")
        assert response.status_code == 200 and response.json()["manifests"] == []
    bad = client.get(f"/v2/{NAME}/referrers/sha256:nope")
    assert bad.status_code == 400 and error_codes(bad) == ["DIGEST_INVALID"]


def test_referrer_pushed_before_its_subject(client: TestClient) -> None:
    subject, _media_type = image(client, NAME, [b"later"])
    _body, digest = _referrer(client, subject, "application/vnd.example.sig", "early")
    listed = client.get(f"/v2/{NAME}/referrers/{sha256(subject)}").json()["manifests"]
    assert [m["digest"] for m in listed] == [digest]


# issue 11: n is ASCII digits and at most 2**63 - 1; never a 500, never a Unicode digit.
@pytest.mark.parametrize(
    "n", ["²", "\u0661", "\u0663\u0662", "1" * 5000, str(2**63), "+1", " 1", "1_0", "0x10", "1\n"]
)
@pytest.mark.parametrize("path", [f"/v2/{NAME}/tags/list", "/v2/_catalog"])
def test_n_is_ascii_and_bounded(client: TestClient, tagged: bytes, path: str, n: str) -> None:
    response = client.get(path, params={"n": n})
    assert response.status_code == 400, response.text
    assert error_codes(response) == ["PAGINATION_NUMBER_INVALID"]
    assert len(response.json()["errors"][0]["message"]) <= 200
    assert "sys.set_int_max_str_digits" not in response.text


@pytest.mark.parametrize("path", [f"/v2/{NAME}/tags/list", "/v2/_catalog"])
def test_largest_n_is_capped(client: TestClient, tagged: bytes, path: str) -> None:
    response = client.get(path, params={"n": str(2**63 - 1)})
    assert response.status_code == 200
