"""Memory must not grow with object size: 64 MiB objects stream in chunk-sized pieces."""

from __future__ import annotations

import hashlib
import tracemalloc
from collections.abc import Iterator

import pytest

from moorage.storage import StorageDriver

MiB = 1 << 20
SIZE = 64 * MiB
PEAK_LIMIT = 4 * MiB


def pattern_chunks(total: int = SIZE, chunk: int = MiB) -> Iterator[bytes]:
    """``total`` bytes, one ``chunk`` alive at a time; every chunk distinct."""
    for index in range(total // chunk):
        yield index.to_bytes(4, "big") * (chunk // 4)


def expected_digest() -> str:
    hasher = hashlib.sha256()
    for chunk in pattern_chunks():
        hasher.update(chunk)
    return hasher.hexdigest()


def traced_peak(consume: Iterator[bytes]) -> tuple[str, int, int]:
    """Consume the chunks under tracemalloc: (sha256, byte count, peak traced bytes)."""
    hasher = hashlib.sha256()
    count = 0
    tracemalloc.start()
    try:
        for chunk in consume:
            hasher.update(chunk)
            count += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return hasher.hexdigest(), count, peak


def test_reading_a_large_object_streams(driver: StorageDriver) -> None:
    driver.put("big/data", pattern_chunks())
    digest, count, peak = traced_peak(driver.read("big/data", chunk_size=MiB))
    assert (digest, count) == (expected_digest(), SIZE)
    assert peak < PEAK_LIMIT


def test_ranged_read_of_a_large_object_streams(driver: StorageDriver) -> None:
    driver.put("big/data", pattern_chunks())
    _, count, peak = traced_peak(driver.read("big/data", offset=MiB + 3, length=40 * MiB))
    assert count == 40 * MiB
    assert peak < PEAK_LIMIT


@pytest.mark.parametrize("backend", ["filesystem"], indirect=True)
def test_filesystem_writes_and_uploads_stream(driver: StorageDriver) -> None:
    """put, append_upload, read_upload and complete_upload never buffer the object."""
    tracemalloc.start()
    try:
        driver.put("big/data", pattern_chunks())
        session_id, metadata = driver.initiate_upload()
        offset = 0
        for _ in range(2):
            written, metadata = driver.append_upload(
                session_id, metadata, offset, pattern_chunks(SIZE // 2)
            )
            offset += written
        hasher = hashlib.sha256()
        for chunk in driver.read_upload(session_id, metadata):
            hasher.update(chunk)
        driver.complete_upload(session_id, metadata, "big/upload")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert offset == SIZE
    assert driver.stat("big/upload").size == SIZE
    assert peak < PEAK_LIMIT
