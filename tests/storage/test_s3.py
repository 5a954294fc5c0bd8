"""S3 driver specifics, against SeaweedFS and moto's server mode on 127.0.0.1: multipart
sessions from uneven chunks, bounded memory on writes, presigned redirects, ranged copies."""

from __future__ import annotations

import hashlib
import json
import tracemalloc
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from moorage.storage import StorageDriver, create_driver
from moorage.storage.base import CheckedDriver
from moorage.storage.s3 import S3Driver
from moorage.storage.s3common import MIN_PART, MiB
from storage.backends import Backend, ClientGoneError, failing, read_all, s3_backend
from storage.test_streaming import pattern_chunks
from support.s3servers import S3Server

KiB = 1 << 10
UNEVEN = [KiB, 3 * MiB, 7 * MiB, 1, 5 * MiB - 1, 300 * KiB, 2 * MiB + 17]


@pytest.fixture(params=["s3-moto", "s3-seaweedfs"])
def server(request: pytest.FixtureRequest) -> S3Server:
    found = request.getfixturevalue("moto_s3" if request.param == "s3-moto" else "seaweedfs_s3")
    assert isinstance(found, S3Server)
    return found


@pytest.fixture
def make(server: S3Server) -> Iterator[Any]:
    """``make(**driver options)``: a Backend on the server, cleaned up after the test."""
    built: list[Backend] = []

    def build(**options: Any) -> Backend:
        built.append(s3_backend(f"s3-{server.name}", server, **options))
        return built[-1]

    yield build
    for backend in built:
        backend.cleanup()


def blob(size: int, seed: int = 0) -> bytes:
    block = hashlib.sha256(seed.to_bytes(4, "big")).digest() * (MiB // 32)
    return (block * (size // len(block) + 1))[:size]


def inner(driver: StorageDriver) -> S3Driver:
    assert isinstance(driver, CheckedDriver)
    assert isinstance(driver.inner, S3Driver)
    return driver.inner


def append_all(driver: StorageDriver, sizes: list[int]) -> tuple[str, dict[str, Any], bytes]:
    session_id, metadata = driver.initiate_upload()
    data = blob(sum(sizes))
    offset = 0
    for size in sizes:
        # Each request on a "different worker": metadata only ever round-trips through JSON.
        written, metadata = driver.append_upload(
            session_id, json.loads(json.dumps(metadata)), offset, [data[offset : offset + size]]
        )
        assert written == size
        offset += size
    return session_id, metadata, data


def test_uneven_chunks_make_a_multipart_object(make: Any) -> None:
    backend = make(part_size=5 * MiB)
    driver = backend.driver
    session_id, metadata, data = append_all(driver, UNEVEN)
    sizes = [segment["size"] for segment in metadata["segments"]]
    assert sum(sizes) == len(data) == driver.upload_size(session_id, metadata)
    sealed = [s for s in sizes if s >= MIN_PART]
    assert len(sealed) >= 2
    assert sum(s for s in sizes if s < MIN_PART) < MIN_PART  # loose tail stays small
    upload_digest = hashlib.sha256(read_all(driver.read_upload(session_id, metadata))).hexdigest()
    assert upload_digest == hashlib.sha256(data).hexdigest()
    driver.complete_upload(session_id, metadata, "blobs/big/data")
    assert driver.stat("blobs/big/data").size == len(data)
    digest = hashlib.sha256(read_all(driver.read("blobs/big/data"))).hexdigest()
    assert digest == hashlib.sha256(data).hexdigest()
    assert backend.raw_entries() == ["blobs/big/data"]
    assert list(driver.list_uploads()) == []


def test_stale_offset_inside_a_sealed_segment(make: Any) -> None:
    driver = make(part_size=5 * MiB).driver
    session_id, metadata, data = append_all(driver, [12 * MiB])
    cut = 7 * MiB + 3  # in the middle of the second sealed segment
    written, metadata = driver.append_upload(session_id, metadata, cut, [b"tail", b"!"])
    assert written == 5
    expected = data[:cut] + b"tail!"
    assert read_all(driver.read_upload(session_id, metadata, chunk_size=MiB)) == expected
    driver.complete_upload(session_id, metadata, "blobs/cut/data")
    assert read_all(driver.read("blobs/cut/data")) == expected


def test_interrupted_large_append_keeps_the_committed_state(make: Any) -> None:
    backend = make(part_size=5 * MiB)
    driver = backend.driver
    session_id, metadata, data = append_all(driver, [6 * MiB])
    with pytest.raises(ClientGoneError):
        driver.append_upload(session_id, metadata, len(data), failing(blob(11 * MiB, 1)))
    assert read_all(driver.read_upload(session_id, metadata)) == data
    driver.cancel_upload(session_id, metadata)
    assert backend.raw_entries() == []  # orphaned segments go with the session


def test_writes_and_uploads_keep_memory_bounded(make: Any) -> None:
    """put, append_upload, read_upload and complete_upload hold about two parts at most."""
    part = 5 * MiB
    driver = make(part_size=part, multipart_threshold=part).driver
    size = 32 * MiB
    tracemalloc.start()
    try:
        driver.put("big/put", pattern_chunks(size))
        session_id, metadata = driver.initiate_upload()
        offset = 0
        for _ in range(2):
            written, metadata = driver.append_upload(
                session_id, metadata, offset, pattern_chunks(size // 2)
            )
            offset += written
        hasher = hashlib.sha256()
        for chunk in driver.read_upload(session_id, metadata):
            hasher.update(chunk)
        driver.complete_upload(session_id, metadata, "big/upload")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert driver.stat("big/put").size == driver.stat("big/upload").size == size
    expected = hashlib.sha256(b"".join(pattern_chunks(size // 2)) * 2).hexdigest()
    assert hasher.hexdigest() == expected
    assert peak < 3 * part + 2 * MiB


def test_put_streams_a_multipart_upload_and_aborts_it_on_failure(make: Any) -> None:
    backend = make(part_size=5 * MiB, multipart_threshold=5 * MiB)
    driver = backend.driver
    data = blob(11 * MiB + 5)
    assert driver.put("a/big", [data[: 3 * MiB], data[3 * MiB :]]) == len(data)
    assert read_all(driver.read("a/big", offset=MiB, length=6 * MiB)) == data[MiB : 7 * MiB]
    with pytest.raises(ClientGoneError):
        driver.put("a/big", failing(blob(12 * MiB, 2)))
    assert read_all(driver.read("a/big")) == data
    assert backend.raw_entries() == ["a/big"]  # the failed multipart upload was aborted


def test_move_beyond_the_copy_threshold_copies_ranges(make: Any) -> None:
    backend = make(copy_threshold=6 * MiB, copy_part_size=5 * MiB)
    driver = backend.driver
    data = blob(12 * MiB + 1)
    driver.put("src/data", [data])
    driver.move("src/data", "dst/data")
    assert not driver.exists("src/data")
    assert driver.stat("dst/data").size == len(data)
    assert hashlib.sha256(read_all(driver.read("dst/data"))).digest() == (
        hashlib.sha256(data).digest()
    )
    assert backend.raw_entries() == ["dst/data"]


def test_presigned_redirects_fetch_with_plain_urllib(make: Any) -> None:
    driver = make(presign_redirects=True).driver
    driver.put("blobs/x/data", [b"redirected bytes"])
    url = driver.redirect_url("blobs/x/data", 60)
    assert url is not None and url.startswith("http://127.0.0.1:")
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == b"redirected bytes"


def test_prefix_scopes_the_driver(server: S3Server, make: Any) -> None:
    first, second = make().driver, make().driver
    first.put("k", [b"1"])
    assert list(second.list("")) == []
    assert inner(first).bucket.prefix.startswith("t-")


@pytest.mark.parametrize(
    "options",
    [
        {"part_size": MIN_PART - 1},
        {"copy_part_size": 6 * 1024 * MiB},
        {"multipart_threshold": -1},
        {"addressing_style": "sideways"},
        {"bucket": ""},
        {"prefix": "../x"},
    ],
)
def test_bad_options_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        create_driver("s3", **{"bucket": "b", "endpoint_url": "http://127.0.0.1:9", **options})
