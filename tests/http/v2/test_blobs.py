"""Blob GET/HEAD/DELETE: headers, ranges and unlinking."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient
from tests.http.v2.helpers import error_codes, image, put_manifest, sha256, upload

NAME = "acme/app"
DATA = bytes(range(256)) * 8  # 2048 bytes


@pytest.fixture
def digest(client: TestClient) -> str:
    return upload(client, NAME, DATA)


def test_head_and_get_headers(client: TestClient, digest: str) -> None:
    head = client.head(f"/v2/{NAME}/blobs/{digest}")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["Content-Length"] == "2048"
    assert head.headers["Docker-Content-Digest"] == digest
    assert head.headers["Content-Type"] == "application/octet-stream"
    assert head.headers["Accept-Ranges"] == "bytes"
    assert head.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    got = client.get(f"/v2/{NAME}/blobs/{digest}")
    assert got.content == DATA and got.headers["Content-Length"] == "2048"


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-9", 0, 9),
        ("bytes=2000-5000", 2000, 2047),
        ("bytes=100-", 100, 2047),
        ("bytes=-48", 2000, 2047),
        ("bytes=2047-2047", 2047, 2047),
    ],
)
def test_ranges(client: TestClient, digest: str, header: str, start: int, end: int) -> None:
    response = client.get(f"/v2/{NAME}/blobs/{digest}", headers={"Range": header})
    assert response.status_code == 206
    assert response.headers["Content-Range"] == f"bytes {start}-{end}/2048"
    assert response.content == DATA[start : end + 1]
    assert response.headers["Content-Length"] == str(end - start + 1)


@pytest.mark.parametrize("header", ["bytes=2048-", "bytes=3000-4000", "bytes=10-5"])
def test_unsatisfiable_ranges(client: TestClient, digest: str, header: str) -> None:
    response = client.get(f"/v2/{NAME}/blobs/{digest}", headers={"Range": header})
    assert response.status_code == 416
    assert response.headers["Content-Range"] == "bytes */2048"
    assert error_codes(response) == ["RANGE_INVALID"]  # every 4xx carries the OCI error body


def test_unknown_and_malformed_digests(client: TestClient, digest: str) -> None:
    missing = client.get(f"/v2/{NAME}/blobs/{sha256(b'missing')}")
    assert missing.status_code == 404 and error_codes(missing) == ["BLOB_UNKNOWN"]
    assert missing.json()["errors"][0]["detail"] == {"digest": sha256(b"missing")}
    for bad in ("sha256:xyz", "sha256:" + "0" * 63, "notadigest", "sha256:..%2F..%2Fetc"):
        response = client.get(f"/v2/{NAME}/blobs/{bad}")
        assert response.status_code in (400, 404), bad
        if response.status_code == 400:
            assert error_codes(response) == ["DIGEST_INVALID"]


def test_unknown_repository(client: TestClient) -> None:
    response = client.get(f"/v2/acme/nothing/blobs/{sha256(b'x')}")
    assert response.status_code == 404 and error_codes(response) == ["NAME_UNKNOWN"]


@pytest.mark.parametrize("name", ["ACME/app", "acme/../etc", "acme//app", "-acme/app", "acme"])
def test_malformed_names(client: TestClient, name: str) -> None:
    response = client.get(f"/v2/{name}/tags/list")
    assert response.status_code in (400, 404)
    if response.status_code == 400:
        assert error_codes(response) == ["NAME_INVALID"]


def test_delete_unlinks_an_unreferenced_blob(client: TestClient, digest: str) -> None:
    assert client.delete(f"/v2/{NAME}/blobs/{digest}").status_code == 202
    assert client.head(f"/v2/{NAME}/blobs/{digest}").status_code == 404
    assert client.delete(f"/v2/{NAME}/blobs/{digest}").status_code == 404


def test_delete_of_a_blob_a_manifest_uses(client: TestClient) -> None:
    body, media_type = image(client, NAME, [b"in use"])
    put_manifest(client, NAME, "latest", body, media_type)
    layer = sha256(b"in use")
    response = client.delete(f"/v2/{NAME}/blobs/{layer}")
    assert response.status_code == 405 and error_codes(response) == ["UNSUPPORTED"]
    assert client.head(f"/v2/{NAME}/blobs/{layer}").status_code == 200
    # Once the manifest is gone the blob can go too.
    assert client.delete(f"/v2/{NAME}/manifests/{sha256(body)}").status_code == 202
    assert client.delete(f"/v2/{NAME}/blobs/{layer}").status_code == 202
    assert client.head(f"/v2/{NAME}/blobs/{layer}").status_code == 404


# issue 11: numbers past 64 bits (or past Python's 4,300-digit limit) in a Range never 500.
HUGE = "9" * 5000


@pytest.mark.parametrize(
    ("header", "status", "start", "end"),
    [
        (f"bytes={HUGE}-", 416, None, None),
        (f"bytes={2**63}-{2**64}", 416, None, None),
        (f"bytes=0-{HUGE}", 206, 0, 2047),
        (f"bytes=-{HUGE}", 206, 0, 2047),
        (f"bytes=10-{2**70}", 206, 10, 2047),
    ],
)
def test_huge_range_numbers(
    client: TestClient, digest: str, header: str, status: int, start: int | None, end: int | None
) -> None:
    response = client.get(f"/v2/{NAME}/blobs/{digest}", headers={"Range": header})
    assert response.status_code == status, response.text
    if start is not None and end is not None:
        assert response.headers["Content-Range"] == f"bytes {start}-{end}/2048"
        assert response.content == DATA[start : end + 1]


# Header bytes arrive as latin-1, whose ``²³¹`` pass ``str.isdigit`` and fail ``int``.
@pytest.mark.parametrize("header", ["bytes=²-", "bytes=0-³", "bytes=-¹", "bytes=1²-"])
def test_unicode_digits_in_range_are_not_numbers(
    client: TestClient, digest: str, header: str
) -> None:
    # Not a range we understand: the whole blob, as for any unusable Range header.
    raw = header.encode("latin-1")
    response = client.get(f"/v2/{NAME}/blobs/{digest}", headers={"Range": raw})  # type: ignore[dict-item]
    assert response.status_code == 200 and response.content == DATA


BAD_DIGESTS = [
    "sha256:../../x",
    "sha256:..%2F..%2Fetc%2Fpasswd",
    "sha256:" + "A" * 64,
    "sha256:" + "a" * 63,
    "sha256:" + "a" * 65,
    "sha512:" + "a" * 64,
    "md5:d41d8cd98f00b204e9800998ecf8427e",
    "blake3:" + "a" * 64,
    "sha256:",
    "sha256:" + "a" * 10_000,
]


@pytest.mark.parametrize("bad", BAD_DIGESTS)
def test_malformed_digests_are_4xx_everywhere(client: TestClient, digest: str, bad: str) -> None:
    session = client.post(f"/v2/{NAME}/blobs/uploads/").headers["Location"]
    responses = [
        client.get(f"/v2/{NAME}/blobs/{bad}"),
        client.delete(f"/v2/{NAME}/blobs/{bad}"),
        client.get(f"/v2/{NAME}/manifests/{bad}"),
        client.get(f"/v2/{NAME}/referrers/{bad}"),
        client.post(f"/v2/{NAME}/blobs/uploads/", params={"digest": bad}, content=b"x"),
        client.put(session, params={"digest": bad}, content=b"x"),
    ]
    for response in responses:
        assert 400 <= response.status_code < 500, (response.request.url, response.text[:200])
        assert len(response.json()["errors"][0]["message"]) <= 200
    # A failed mount falls back to a new session; nothing outside the store was read.
    mounted = client.post(f"/v2/{NAME}/blobs/uploads/", params={"mount": bad, "from": "acme/x"})
    assert mounted.status_code == 202
    assert client.get(f"/v2/{NAME}/blobs/{digest}").content == DATA
