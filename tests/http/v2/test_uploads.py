"""Blob uploads over the real ASGI app: every path of the protocol and its errors."""

from __future__ import annotations

import hashlib

import pytest
from starlette.testclient import TestClient
from tests.http.v2.helpers import error_codes, sha256

from moorage.http.v2.common import BODY_BLOCK

NAME = "acme/app"


def start(client: TestClient, name: str = NAME) -> str:
    response = client.post(f"/v2/{name}/blobs/uploads/")
    assert response.status_code == 202
    assert response.headers["Range"] == "0-0"
    assert response.headers["Content-Length"] == "0"
    location = response.headers["Location"]
    assert location == f"/v2/{name}/blobs/uploads/{response.headers['Docker-Upload-UUID']}"
    return location


def head_blob(client: TestClient, digest: str, name: str = NAME) -> int:
    return client.head(f"/v2/{name}/blobs/{digest}").status_code


def test_chunked_upload_with_content_range(client: TestClient) -> None:
    data = bytes(range(256)) * 400
    location = start(client)
    first = client.patch(location, content=data[:1000], headers={"Content-Range": "0-999"})
    assert first.status_code == 202 and first.headers["Range"] == "0-999"
    assert client.get(location).headers["Range"] == "0-999"
    second = client.patch(
        location,
        content=data[1000:],
        headers={"Content-Range": f"1000-{len(data) - 1}", "Content-Length": str(len(data) - 1000)},
    )
    assert second.headers["Range"] == f"0-{len(data) - 1}"
    done = client.put(f"{location}?digest={sha256(data)}")
    assert done.status_code == 201
    assert done.headers["Location"] == f"/v2/{NAME}/blobs/{sha256(data)}"
    assert done.headers["Docker-Content-Digest"] == sha256(data)
    got = client.get(f"/v2/{NAME}/blobs/{sha256(data)}")
    assert got.content == data and got.headers["Docker-Content-Digest"] == sha256(data)
    assert client.get(location).status_code == 404  # the session is gone


def test_streamed_patch_without_lengths(client: TestClient) -> None:
    data = b"x" * (3 * 1024 * 1024 + 17)

    def body():  # type: ignore[no-untyped-def]
        for i in range(0, len(data), 65536):
            yield data[i : i + 65536]

    location = start(client)
    assert client.patch(location, content=body()).headers["Range"] == f"0-{len(data) - 1}"
    assert client.put(f"{location}?digest={sha256(data)}").status_code == 201
    assert client.get(f"/v2/{NAME}/blobs/{sha256(data)}").content == data


@pytest.mark.parametrize("size", [BODY_BLOCK, BODY_BLOCK + 1])
def test_bodies_up_to_a_block_and_longer(client: TestClient, size: int) -> None:
    """Up to one block the body is read whole before the worker thread starts; past it,
    streamed in blocks. Both land the same bytes, monolithic or as a final PUT."""
    data = bytes(range(251)) * (size // 251) + b"z" * (size % 251)
    monolithic = client.post(f"/v2/{NAME}/blobs/uploads/?digest={sha256(data)}", content=data)
    assert monolithic.status_code == 201
    other = data[::-1]
    location = start(client)
    assert client.put(f"{location}?digest={sha256(other)}", content=other).status_code == 201
    assert client.get(f"/v2/{NAME}/blobs/{sha256(data)}").content == data
    assert client.get(f"/v2/{NAME}/blobs/{sha256(other)}").content == other


def test_final_put_carries_the_last_bytes(client: TestClient) -> None:
    location = start(client)
    client.patch(location, content=b"abc")
    done = client.put(f"{location}?digest={sha256(b'abcdef')}", content=b"def")
    assert done.status_code == 201
    assert client.get(f"/v2/{NAME}/blobs/{sha256(b'abcdef')}").content == b"abcdef"


def test_monolithic_post_and_zero_length_blob(client: TestClient) -> None:
    empty = sha256(b"")
    response = client.post(f"/v2/{NAME}/blobs/uploads/?digest={empty}", content=b"")
    assert response.status_code == 201 and response.headers["Docker-Content-Digest"] == empty
    head = client.head(f"/v2/{NAME}/blobs/{empty}")
    assert head.status_code == 200 and head.headers["Content-Length"] == "0"
    assert (
        client.get(f"/v2/{NAME}/blobs/{empty}", headers={"Range": "bytes=0-0"}).status_code == 416
    )


def test_sha512_blobs(client: TestClient) -> None:
    data = b"sha512 content"
    digest = "sha512:" + hashlib.sha512(data).hexdigest()
    location = start(client)
    client.patch(location, content=data)
    done = client.put(f"{location}?digest={digest}")
    assert done.status_code == 201 and done.headers["Docker-Content-Digest"] == digest
    assert client.get(f"/v2/{NAME}/blobs/{digest}").content == data


def test_out_of_order_chunk_is_416_and_changes_nothing(client: TestClient) -> None:
    location = start(client)
    client.patch(location, content=b"0123456789", headers={"Content-Range": "0-9"})
    for bad in ("11-20", "0-9", "5-14"):
        response = client.patch(location, content=b"0123456789", headers={"Content-Range": bad})
        assert response.status_code == 416
        assert response.headers["Range"] == "0-9"
        assert response.headers["Location"] == location
    assert client.get(location).headers["Range"] == "0-9"


@pytest.mark.parametrize("header", ["garbage", "10", "9-0", "a-b"])
def test_malformed_content_range_is_416(client: TestClient, header: str) -> None:
    location = start(client)
    client.patch(location, content=b"0123456789")
    response = client.patch(location, content=b"x", headers={"Content-Range": header})
    assert response.status_code == 416
    assert client.get(location).headers["Range"] == "0-9"


def test_content_range_and_body_length_must_agree(client: TestClient) -> None:
    location = start(client)
    response = client.patch(location, content=b"only five", headers={"Content-Range": "0-99"})
    assert response.status_code == 400 and error_codes(response) == ["SIZE_INVALID"]
    # Nothing of it counts: the session still starts at 0 and the next chunk lands there.
    assert client.get(location).headers["Range"] == "0-0"
    client.patch(location, content=b"hello", headers={"Content-Range": "0-4"})
    assert client.put(f"{location}?digest={sha256(b'hello')}").status_code == 201


def test_wrong_digest_cancels_and_stores_nothing(client: TestClient) -> None:
    location = start(client)
    client.patch(location, content=b"real bytes")
    wrong = sha256(b"other bytes")
    response = client.put(f"{location}?digest={wrong}")
    assert response.status_code == 400 and error_codes(response) == ["DIGEST_INVALID"]
    assert head_blob(client, wrong) == 404
    assert head_blob(client, sha256(b"real bytes")) == 404
    assert client.get(location).status_code == 404  # cancelled


def test_monolithic_wrong_digest_stores_nothing(client: TestClient) -> None:
    wrong = sha256(b"not this")
    response = client.post(f"/v2/{NAME}/blobs/uploads/?digest={wrong}", content=b"this")
    assert response.status_code == 400 and error_codes(response) == ["DIGEST_INVALID"]
    assert head_blob(client, wrong) == 404


@pytest.mark.parametrize(
    "digest", ["", "sha256:abc", "sha256:" + "A" * 64, "md5:abcd", "sha256:../../../etc/passwd"]
)
def test_finishing_needs_a_valid_digest(client: TestClient, digest: str) -> None:
    location = start(client)
    client.patch(location, content=b"data")
    response = client.put(f"{location}?digest={digest}" if digest else location)
    assert response.status_code == 400 and error_codes(response) == ["DIGEST_INVALID"]


def test_unknown_and_foreign_sessions(client: TestClient) -> None:
    location = start(client)
    upload_id = location.rsplit("/", 1)[1]
    for path in (
        f"/v2/{NAME}/blobs/uploads/{'0' * 32}",
        f"/v2/acme/other/blobs/uploads/{upload_id}",
        f"/v2/{NAME}/blobs/uploads/..%2F..%2Fetc",
    ):
        response = client.patch(path, content=b"x")
        assert response.status_code in (404,), path
    client.post("/v2/acme/other/blobs/uploads/")  # create the other repository
    response = client.get(f"/v2/acme/other/blobs/uploads/{upload_id}")
    assert response.status_code == 404 and error_codes(response) == ["BLOB_UPLOAD_UNKNOWN"]


def test_cancel(client: TestClient) -> None:
    location = start(client)
    client.patch(location, content=b"abandon")
    assert client.delete(location).status_code == 204
    assert client.get(location).status_code == 404
    assert client.delete(location).status_code == 404


def test_mount_links_and_falls_back(client: TestClient) -> None:
    digest = sha256(b"shared layer")
    client.post(f"/v2/acme/source/blobs/uploads/?digest={digest}", content=b"shared layer")
    mounted = client.post(f"/v2/acme/target/blobs/uploads/?mount={digest}&from=acme/source")
    assert mounted.status_code == 201
    assert mounted.headers["Location"] == f"/v2/acme/target/blobs/{digest}"
    assert client.get(f"/v2/acme/target/blobs/{digest}").content == b"shared layer"
    missing = sha256(b"nowhere")
    for query in (
        f"mount={missing}&from=acme/source",
        f"mount={digest}&from=acme/nosuch",
        f"mount={digest}&from=..%2Fbad",
        f"mount={missing}",
    ):
        fallback = client.post(f"/v2/acme/third/blobs/uploads/?{query}")
        assert fallback.status_code == 202, query
        assert "Docker-Upload-UUID" in fallback.headers
    assert head_blob(client, digest, "acme/third") == 404
    # Without ``from`` (OCI 1.1), from any repository holding it: the registry is open here.
    assert client.post(f"/v2/acme/third/blobs/uploads/?mount={digest}").status_code == 201
    assert head_blob(client, digest, "acme/third") == 200


def test_blobs_are_scoped_to_repositories(client: TestClient) -> None:
    digest = sha256(b"private bytes")
    client.post(f"/v2/acme/one/blobs/uploads/?digest={digest}", content=b"private bytes")
    client.post("/v2/acme/two/blobs/uploads/")
    response = client.get(f"/v2/acme/two/blobs/{digest}")
    assert response.status_code == 404 and error_codes(response) == ["BLOB_UNKNOWN"]
