"""Manifest PUT/GET/HEAD/DELETE, negotiation, validation errors."""

from __future__ import annotations

import json

import pytest
from starlette.testclient import TestClient
from tests.http.v2.helpers import (
    OCI_INDEX,
    OCI_MANIFEST,
    SCHEMA2,
    SCHEMA2_LIST,
    base_v1_entry,
    error_codes,
    image,
    put_manifest,
    sha256,
    upload,
)

from moorage.app import Application

NAME = "acme/app"
SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"


def test_push_and_pull_by_tag_and_digest(client: TestClient) -> None:
    body, media_type = image(client, NAME, [b"layer one", b"layer two"])
    pushed = put_manifest(client, NAME, "latest", body, media_type)
    digest = sha256(body)
    assert pushed.status_code == 201
    assert pushed.headers["Location"] == f"/v2/{NAME}/manifests/{digest}"
    assert pushed.headers["Docker-Content-Digest"] == digest
    for reference in ("latest", digest):
        got = client.get(f"/v2/{NAME}/manifests/{reference}", headers={"Accept": media_type})
        assert got.status_code == 200 and got.content == body  # the exact bytes
        assert got.headers["Content-Type"] == media_type
        assert got.headers["Docker-Content-Digest"] == digest
        head = client.head(f"/v2/{NAME}/manifests/{reference}")
        assert head.headers["Content-Length"] == str(len(body))
        assert head.headers["Content-Type"] == media_type
    etag = client.get(f"/v2/{NAME}/manifests/latest").headers["ETag"]
    assert (
        client.get(f"/v2/{NAME}/manifests/latest", headers={"If-None-Match": etag}).status_code
        == 304
    )


def test_push_by_digest_then_pull(client: TestClient) -> None:
    body, media_type = image(client, NAME, [b"untagged"], media_type=OCI_MANIFEST)
    digest = sha256(body)
    assert put_manifest(client, NAME, digest, body, media_type).status_code == 201
    assert client.get(f"/v2/{NAME}/manifests/{digest}").content == body
    assert client.get(f"/v2/{NAME}/tags/list").json()["tags"] == []


def test_pushing_with_the_wrong_digest(client: TestClient) -> None:
    body, media_type = image(client, NAME, [b"x"])
    for reference in (sha256(b"other"), "sha256:baddigeststring"):
        response = put_manifest(client, NAME, reference, body, media_type)
        assert response.status_code == 400 and error_codes(response) == ["DIGEST_INVALID"]
    padded = put_manifest(client, NAME, sha256(body), body + b"  ", media_type)
    assert padded.status_code == 400
    assert client.get(f"/v2/{NAME}/manifests/{sha256(body)}").status_code == 404


def test_unknown_blob_is_manifest_blob_unknown(client: TestClient) -> None:
    body, media_type = image(client, NAME, [b"x"])
    doc = json.loads(body)
    doc["layers"][0]["digest"] = sha256(b"never uploaded")
    bad = json.dumps(doc).encode()
    response = put_manifest(client, NAME, "latest", bad, media_type)
    assert response.status_code == 400 and error_codes(response) == ["MANIFEST_BLOB_UNKNOWN"]
    assert response.json()["errors"][0]["detail"] == {"digest": sha256(b"never uploaded")}
    assert client.get(f"/v2/{NAME}/manifests/latest").status_code == 404
    assert client.get(f"/v2/{NAME}/manifests/{sha256(bad)}").status_code == 404


@pytest.mark.parametrize(
    ("content_type", "status"),
    [("application/vnd.example.unknown+json", 415), ("text/plain", 415)],
)
def test_unknown_media_types(client: TestClient, content_type: str, status: int) -> None:
    body, _ = image(client, NAME, [b"x"])
    response = put_manifest(client, NAME, "latest", body, content_type)
    assert response.status_code == status and error_codes(response) == ["MANIFEST_INVALID"]


def test_media_type_must_agree_with_the_body(client: TestClient) -> None:
    body, _ = image(client, NAME, [b"x"])  # a schema2 body
    response = put_manifest(client, NAME, "latest", body, OCI_INDEX)
    assert response.status_code == 400 and error_codes(response) == ["MANIFEST_INVALID"]


@pytest.mark.parametrize("body", [b"", b"not json", b"[]", b'{"schemaVersion": 3}'])
def test_malformed_manifests(client: TestClient, body: bytes) -> None:
    response = put_manifest(client, NAME, "latest", body, SCHEMA2)
    assert response.status_code == 400 and error_codes(response) == ["MANIFEST_INVALID"]


def test_oversize_manifest_is_413(client: TestClient, application: Application) -> None:
    limit = application.settings.manifest_size_limit
    body, _media_type = image(client, NAME, [b"x"])
    doc = json.loads(body)
    doc["annotations"] = {"padding": "p" * limit}
    response = put_manifest(client, NAME, "latest", json.dumps(doc).encode(), OCI_MANIFEST)
    assert response.status_code == 413 and error_codes(response) == ["MANIFEST_INVALID"]


def test_large_manifest_under_the_limit(client: TestClient) -> None:
    body, _ = image(client, NAME, [b"x"], media_type=OCI_MANIFEST)
    doc = json.loads(body)
    doc["annotations"] = {"big": "b" * (3_900_000)}
    big = json.dumps(doc).encode()
    assert put_manifest(client, NAME, "big", big, OCI_MANIFEST).status_code == 201


@pytest.mark.parametrize("tag", ["-bad", ".bad", "a" * 129, "bad:tag"])
def test_invalid_tags_on_push_and_pull(client: TestClient, tag: str) -> None:
    body, media_type = image(client, NAME, [b"x"])
    response = put_manifest(client, NAME, tag, body, media_type)
    assert response.status_code == 400
    assert error_codes(response)[0] in ("TAG_INVALID", "DIGEST_INVALID")
    assert client.get(f"/v2/{NAME}/manifests/{tag}").status_code in (404,)


def test_get_invalid_reference_is_404(client: TestClient) -> None:
    image(client, NAME, [b"x"])
    for ref in (".INVALID_MANIFEST_NAME", "sha256:totallywrong"):
        response = client.get(f"/v2/{NAME}/manifests/{ref}")
        assert response.status_code == 404 and error_codes(response) == ["MANIFEST_UNKNOWN"]


def test_delete_by_tag_and_by_digest(client: TestClient) -> None:
    body, media_type = image(client, NAME, [b"x"])
    digest = sha256(body)
    put_manifest(client, NAME, "one", body, media_type)
    put_manifest(client, NAME, "two", body, media_type)
    assert client.delete(f"/v2/{NAME}/manifests/one").status_code == 202
    assert client.get(f"/v2/{NAME}/manifests/one").status_code == 404
    assert client.get(f"/v2/{NAME}/manifests/two").status_code == 200
    assert client.delete(f"/v2/{NAME}/manifests/{digest}").status_code == 202
    assert client.get(f"/v2/{NAME}/manifests/two").status_code == 404
    assert client.get(f"/v2/{NAME}/manifests/{digest}").status_code == 404
    assert client.delete(f"/v2/{NAME}/manifests/{digest}").status_code == 404
    assert client.delete(f"/v2/{NAME}/manifests/one").status_code == 404


def test_labels_and_expiry_come_from_the_config(
    client: TestClient, application: Application
) -> None:
    body, media_type = image(
        client, NAME, [b"x"], labels={"maintainer": "me", "quay.expires-after": "2h"}
    )
    put_manifest(client, NAME, "expiring", body, media_type)
    model = application.model
    repo = model.lookup_repository("acme", "app")
    assert repo is not None
    tag = model.get_repo_tag(repo, "expiring")
    assert tag is not None and tag.lifetime_end_ts == tag.lifetime_start_ts + 7200
    manifest = model.get_manifest_for_tag(tag)
    assert manifest is not None
    labels = {label.key: label.source_type_name for label in model.list_manifest_labels(manifest)}
    assert labels == {"maintainer": "manifest", "quay.expires-after": "manifest"}
    layers = model.list_manifest_layers(manifest)
    assert layers is not None and layers[0].layer_info.blob_digest == sha256(b"x")
    history, _ = model.list_repository_tag_history(repo)
    assert len(history) == 1


def test_moving_a_tag_keeps_history(client: TestClient, application: Application) -> None:
    first, media_type = image(client, NAME, [b"first"])
    second, _ = image(client, NAME, [b"second"])
    put_manifest(client, NAME, "latest", first, media_type)
    put_manifest(client, NAME, "latest", second, media_type)
    repo = application.model.lookup_repository("acme", "app")
    assert repo is not None
    history, _ = application.model.list_repository_tag_history(repo)
    assert [t.manifest_digest for t in history] == [sha256(second), sha256(first)]


def _index(client: TestClient, media_type: str, child_type: str) -> tuple[bytes, bytes, bytes]:
    amd, _ = image(client, NAME, [b"amd64 layer"], media_type=child_type)
    arm, _ = image(client, NAME, [b"arm64 layer"], media_type=child_type, arch="arm64")
    for body in (amd, arm):
        assert put_manifest(client, NAME, sha256(body), body, child_type).status_code == 201
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": media_type,
            "manifests": [
                {
                    "mediaType": child_type,
                    "digest": sha256(amd),
                    "size": len(amd),
                    "platform": {"os": "linux", "architecture": "amd64"},
                },
                {
                    "mediaType": child_type,
                    "digest": sha256(arm),
                    "size": len(arm),
                    "platform": {"os": "linux", "architecture": "arm64"},
                },
            ],
        }
    ).encode()
    assert put_manifest(client, NAME, "multi", index, media_type).status_code == 201
    return index, amd, arm


def test_index_and_negotiation(client: TestClient) -> None:
    index, amd, arm = _index(client, SCHEMA2_LIST, SCHEMA2)
    # Clients that take lists get the list; the children pull by digest.
    got = client.get(
        f"/v2/{NAME}/manifests/multi", headers={"Accept": f"{SCHEMA2_LIST}, {SCHEMA2}"}
    )
    assert got.content == index
    assert client.get(f"/v2/{NAME}/manifests/{sha256(arm)}").content == arm
    # A client that takes only single manifests gets the linux/amd64 child, as is.
    single = client.get(f"/v2/{NAME}/manifests/multi", headers={"Accept": SCHEMA2})
    assert single.content == amd and single.headers["Docker-Content-Digest"] == sha256(amd)
    # Every Accept line counts, order does not.
    lines = client.get(
        f"/v2/{NAME}/manifests/multi",
        headers=[("Accept", SCHEMA1_SIGNED), ("Accept", SCHEMA2_LIST)],
    )
    assert lines.content == index


def test_index_children_must_exist(client: TestClient) -> None:
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [{"mediaType": OCI_MANIFEST, "digest": sha256(b"nope"), "size": 4}],
        }
    ).encode()
    response = put_manifest(client, NAME, "multi", index, OCI_INDEX)
    assert response.status_code == 400 and error_codes(response) == ["MANIFEST_BLOB_UNKNOWN"]


def test_schema1_conversion_is_deterministic(client: TestClient) -> None:
    body, media_type = image(client, NAME, [b"old client layer"])
    put_manifest(client, NAME, "legacy", body, media_type)
    first = client.get(f"/v2/{NAME}/manifests/legacy", headers={"Accept": SCHEMA1_SIGNED})
    second = client.get(f"/v2/{NAME}/manifests/legacy", headers={"Accept": SCHEMA1_SIGNED})
    assert first.status_code == 200 and first.headers["Content-Type"] == SCHEMA1_SIGNED
    assert first.headers["Docker-Content-Digest"] == second.headers["Docker-Content-Digest"]
    doc = first.json()
    assert doc["name"] == NAME and doc["tag"] == "legacy" and doc["signatures"]
    assert doc["fsLayers"][0]["blobSum"] == sha256(b"old client layer")
    # By digest the stored bytes come back whatever the Accept header says.
    by_digest = client.get(
        f"/v2/{NAME}/manifests/{sha256(body)}", headers={"Accept": SCHEMA1_SIGNED}
    )
    assert by_digest.content == body


def test_a_client_that_accepts_nothing_we_have(client: TestClient) -> None:
    body, media_type = image(client, NAME, [b"x"], media_type=OCI_MANIFEST)
    put_manifest(client, NAME, "oci", body, media_type)
    response = client.get(f"/v2/{NAME}/manifests/oci", headers={"Accept": SCHEMA2})
    assert response.status_code == 404 and error_codes(response) == ["MANIFEST_UNKNOWN"]


def test_signed_schema1_push(client: TestClient, application: Application) -> None:
    from moorage.domain.manifests import Schema1Signer, build_schema1_manifest

    layer = b"schema1 layer"
    upload(client, NAME, layer)
    entry = base_v1_entry(layer, "a" * 64)
    signer = Schema1Signer.generate()
    body = build_schema1_manifest(NAME, "v1", "amd64", [entry], signer)
    response = put_manifest(client, NAME, "v1", body, SCHEMA1_SIGNED)
    assert response.status_code == 201
    assert client.get(f"/v2/{NAME}/manifests/v1").content == body
    wrong_name = build_schema1_manifest("acme/other", "v1", "amd64", [entry], signer)
    response = put_manifest(client, NAME, "v1", wrong_name, SCHEMA1_SIGNED)
    assert response.status_code == 400 and error_codes(response) == ["NAME_INVALID"]
    tampered = body.replace(b'"architecture": "amd64"', b'"architecture": "arm64"', 1)
    response = put_manifest(client, NAME, "v1", tampered, SCHEMA1_SIGNED)
    assert response.status_code == 400
    assert error_codes(response)[0] in ("MANIFEST_UNVERIFIED", "MANIFEST_INVALID")
    repo = application.model.lookup_repository("acme", "app")
    assert repo is not None
    assert application.model.get_legacy_image(repo, "a" * 64) is not None


def test_manifest_pushed_under_a_sha512_digest(client: TestClient) -> None:
    import hashlib

    body, media_type = image(client, NAME, [b"sha512 manifest"], media_type=OCI_MANIFEST)
    digest = "sha512:" + hashlib.sha512(body).hexdigest()
    pushed = put_manifest(client, NAME, digest, body, media_type)
    assert pushed.status_code == 201 and pushed.headers["Docker-Content-Digest"] == digest
    got = client.get(f"/v2/{NAME}/manifests/{digest}")
    assert got.content == body and got.headers["Docker-Content-Digest"] == digest


def test_push_by_digest_with_tag_parameters(client: TestClient) -> None:
    body, media_type = image(client, NAME, [b"tagged at push"], media_type=OCI_MANIFEST)
    digest = sha256(body)
    tags = [f"t{i}" for i in range(12)]
    query = "&".join(f"tag={tag}" for tag in tags)
    response = client.put(
        f"/v2/{NAME}/manifests/{digest}?{query}", content=body, headers={"Content-Type": media_type}
    )
    assert response.status_code == 201
    assert response.headers["OCI-Tag"].split(", ") == tags
    assert client.get(f"/v2/{NAME}/tags/list").json()["tags"] == sorted(tags)
    assert client.get(f"/v2/{NAME}/manifests/t11").content == body


def test_tag_parameters_are_all_checked_before_anything_is_stored(client: TestClient) -> None:
    body, media_type = image(client, NAME, [b"refused"], media_type=OCI_MANIFEST)
    digest = sha256(body)
    response = client.put(
        f"/v2/{NAME}/manifests/{digest}?tag=good&tag=-bad",
        content=body,
        headers={"Content-Type": media_type},
    )
    assert response.status_code == 400 and error_codes(response) == ["TAG_INVALID"]
    assert client.get(f"/v2/{NAME}/manifests/{digest}").status_code == 404
    assert client.get(f"/v2/{NAME}/tags/list").json()["tags"] == []
    by_tag = client.put(
        f"/v2/{NAME}/manifests/latest?tag=other", content=body, headers={"Content-Type": media_type}
    )
    assert by_tag.status_code == 400 and error_codes(by_tag) == ["TAG_INVALID"]


# -- issue 11: hostile manifest bodies get a 400, never a 500 ----------------------------


@pytest.mark.parametrize("content_type", [None, "application/json", OCI_MANIFEST, SCHEMA2])
@pytest.mark.parametrize("opener", ["[", '{"a":'])
def test_deeply_nested_manifest_is_400(
    client: TestClient, content_type: str | None, opener: str
) -> None:
    closer = "]" if opener == "[" else "}"
    inner = opener * 100_000 + "1" + closer * 100_000
    body = f'{{"schemaVersion": 2, "mediaType": "{OCI_MANIFEST}", "x": {inner}}}'.encode()
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.put(f"/v2/{NAME}/manifests/latest", content=body, headers=headers)
    assert response.status_code == 400, response.text[:300]
    assert error_codes(response) == ["MANIFEST_INVALID"]
    assert len(response.json()["errors"][0]["message"]) <= 200


@pytest.mark.parametrize("content_type", [None, "application/json", SCHEMA2])
def test_huge_integers_in_manifest_are_400(client: TestClient, content_type: str | None) -> None:
    body, _ = image(client, NAME, [b"layer"])
    doc = body.decode()[:-1] + ', "n": ' + "9" * 5000 + "}"
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.put(f"/v2/{NAME}/manifests/latest", content=doc.encode(), headers=headers)
    assert response.status_code == 400, response.text[:300]
    assert error_codes(response) == ["MANIFEST_INVALID"]
    assert "sys." not in response.text and len(response.text) < 400


@pytest.mark.parametrize("size", [2**63, 2**70, -1, True, 1.0])
def test_descriptor_size_is_a_64_bit_integer(client: TestClient, size: object) -> None:
    body, media_type = image(client, NAME, [b"layer"])
    doc = json.loads(body)
    doc["layers"][0]["size"] = size
    response = put_manifest(client, NAME, "latest", json.dumps(doc).encode(), media_type)
    assert response.status_code == 400 and error_codes(response) == ["MANIFEST_INVALID"]


def test_schema1_size_past_64_bits_is_400(client: TestClient) -> None:
    layer = b"schema1 layer"
    upload(client, NAME, layer)
    v1 = json.dumps({"id": "a" * 64, "architecture": "amd64"})[:-1] + f', "Size": {2**70}}}'
    body = {
        "schemaVersion": 1,
        "name": NAME,
        "tag": "v1",
        "architecture": "amd64",
        "fsLayers": [{"blobSum": sha256(layer)}],
        "history": [{"v1Compatibility": v1}],
    }
    response = put_manifest(
        client,
        NAME,
        "v1",
        json.dumps(body).encode(),
        "application/vnd.docker.distribution.manifest.v1+json",
    )
    assert response.status_code == 400, response.text
    assert error_codes(response) == ["MANIFEST_INVALID"]
    assert client.get(f"/v2/{NAME}/manifests/v1").status_code == 404  # nothing stored
