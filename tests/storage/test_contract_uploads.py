"""Driver contract, chunked upload sessions: runs against every backend in BACKENDS.

Session state lives only in the metadata dict the caller persists; each test round-trips it
through JSON, as the database would.
"""

from __future__ import annotations

import json
import time

import pytest

from moorage.storage import (
    InvalidKeyError,
    ObjectNotFoundError,
    StorageDriver,
    UploadBusyError,
    UploadMetadata,
)
from moorage.storage.keys import upload_prefix
from storage.backends import Backend, ClientGoneError, failing, read_all

FINAL = "blobs/final/data"


def persisted(metadata: UploadMetadata) -> UploadMetadata:
    """What the caller gets back from its database row."""
    loaded: UploadMetadata = json.loads(json.dumps(metadata))
    return loaded


def upload(driver: StorageDriver, *parts: bytes) -> tuple[str, UploadMetadata, int]:
    session_id, metadata = driver.initiate_upload()
    offset = 0
    for part in parts:
        written, metadata = driver.append_upload(session_id, persisted(metadata), offset, [part])
        assert written == len(part)
        offset += written
    return session_id, persisted(metadata), offset


def test_initiate_gives_an_empty_session(driver: StorageDriver) -> None:
    session_id, metadata = driver.initiate_upload()
    assert persisted(metadata) == metadata
    assert driver.upload_size(session_id, metadata) == 0
    assert read_all(driver.read_upload(session_id, metadata)) == b""
    assert session_id in dict(driver.list_uploads())


def test_sessions_are_distinct(driver: StorageDriver) -> None:
    first, _ = driver.initiate_upload()
    second, _ = driver.initiate_upload()
    assert first != second
    assert {first, second} <= set(dict(driver.list_uploads()))


def test_append_several_chunks(driver: StorageDriver) -> None:
    session_id, metadata, size = upload(driver, b"hello ", b"", b"chunked ", b"world")
    assert size == 19
    assert driver.upload_size(session_id, metadata) == 19
    assert read_all(driver.read_upload(session_id, metadata)) == b"hello chunked world"
    assert [len(c) for c in driver.read_upload(session_id, metadata, chunk_size=8)] == [8, 8, 3]


def test_one_append_may_carry_many_chunks(driver: StorageDriver) -> None:
    session_id, metadata = driver.initiate_upload()
    written, metadata = driver.append_upload(session_id, metadata, 0, [b"a", b"bc", b"def"])
    assert written == 6
    assert read_all(driver.read_upload(session_id, metadata)) == b"abcdef"


def test_complete_moves_the_bytes_into_the_key_and_ends_the_session(backend: Backend) -> None:
    driver = backend.driver
    session_id, metadata, _ = upload(driver, b"layer ", b"bytes")
    driver.complete_upload(session_id, metadata, FINAL)
    assert read_all(driver.read(FINAL)) == b"layer bytes"
    assert session_id not in dict(driver.list_uploads())
    with pytest.raises(ObjectNotFoundError):
        driver.upload_size(session_id, metadata)
    assert backend.raw_entries() == [FINAL]


def test_complete_an_empty_upload(driver: StorageDriver) -> None:
    session_id, metadata = driver.initiate_upload()
    driver.complete_upload(session_id, metadata, FINAL)
    assert driver.stat(FINAL).size == 0


def test_complete_when_the_key_exists_keeps_it_and_drops_the_session(backend: Backend) -> None:
    driver = backend.driver
    driver.put(FINAL, [b"same content"])
    session_id, metadata, _ = upload(driver, b"same content")
    driver.complete_upload(session_id, metadata, FINAL)
    assert read_all(driver.read(FINAL)) == b"same content"
    assert list(driver.list_uploads()) == []
    assert backend.raw_entries() == [FINAL]


def test_cancel_is_idempotent(backend: Backend) -> None:
    driver = backend.driver
    session_id, metadata, _ = upload(driver, b"abandoned")
    driver.cancel_upload(session_id, metadata)
    driver.cancel_upload(session_id, metadata)
    assert list(driver.list_uploads()) == []
    assert backend.raw_entries() == []
    with pytest.raises(ObjectNotFoundError):
        driver.append_upload(session_id, metadata, 9, [b"more"])


def test_unknown_session_is_not_found(driver: StorageDriver) -> None:
    session_id = "0" * 32
    metadata: UploadMetadata = {"size": 0}
    for call in (
        lambda: driver.append_upload(session_id, metadata, 0, [b"x"]),
        lambda: driver.upload_size(session_id, metadata),
        lambda: driver.read_upload(session_id, metadata),
        lambda: driver.complete_upload(session_id, metadata, FINAL),
    ):
        with pytest.raises(ObjectNotFoundError) as info:
            call()
        assert info.value.key in (upload_prefix(session_id), FINAL)
    driver.cancel_upload(session_id, metadata)  # idempotent, even for a session never seen
    assert not driver.exists(FINAL)


def test_interrupted_append_does_not_count(driver: StorageDriver) -> None:
    session_id, metadata, size = upload(driver, b"committed|")
    with pytest.raises(ClientGoneError):
        driver.append_upload(session_id, metadata, size, failing(b"half of a ", b"chunk"))
    # The caller never received new metadata: the committed state is unchanged.
    assert driver.upload_size(session_id, metadata) == size
    assert read_all(driver.read_upload(session_id, metadata)) == b"committed|"
    written, metadata = driver.append_upload(session_id, metadata, size, [b"retried"])
    assert written == 7
    assert read_all(driver.read_upload(session_id, metadata)) == b"committed|retried"
    driver.complete_upload(session_id, metadata, FINAL)
    assert read_all(driver.read(FINAL)) == b"committed|retried"


def test_interrupted_first_append_then_complete(driver: StorageDriver) -> None:
    session_id, metadata = driver.initiate_upload()
    with pytest.raises(ClientGoneError):
        driver.append_upload(session_id, metadata, 0, failing(b"garbage"))
    driver.complete_upload(session_id, metadata, FINAL)
    assert driver.stat(FINAL).size == 0


def test_append_at_a_stale_offset_truncates(driver: StorageDriver) -> None:
    session_id, old_metadata, _ = upload(driver, b"0123")
    written, metadata = driver.append_upload(session_id, old_metadata, 4, [b"4567"])
    assert read_all(driver.read_upload(session_id, metadata)) == b"01234567"
    # The commit of the second append was lost: the caller retries from its last committed size.
    written, metadata = driver.append_upload(session_id, old_metadata, 4, [b"abc"])
    assert written == 3
    assert driver.upload_size(session_id, metadata) == 7
    assert read_all(driver.read_upload(session_id, metadata)) == b"0123abc"
    written, metadata = driver.append_upload(session_id, metadata, 2, [b"Z"])
    assert read_all(driver.read_upload(session_id, metadata)) == b"01Z"


def test_append_beyond_the_committed_size_is_refused(driver: StorageDriver) -> None:
    session_id, metadata, size = upload(driver, b"abc")
    with pytest.raises(ValueError):
        driver.append_upload(session_id, metadata, size + 1, [b"hole"])
    with pytest.raises(ValueError):
        driver.append_upload(session_id, metadata, -1, [b"x"])
    assert read_all(driver.read_upload(session_id, metadata)) == b"abc"


def test_malformed_metadata_is_refused(driver: StorageDriver) -> None:
    session_id, _ = driver.initiate_upload()
    for bad in ({}, {"size": -1}, {"size": "3"}, {"size": True}):
        with pytest.raises(Exception) as info:
            driver.upload_size(session_id, bad)
        assert not isinstance(info.value, ObjectNotFoundError)


@pytest.mark.parametrize("session_id", ["../../etc", "", "ABC", "0" * 31, "g" * 32, "a/b"])
def test_malformed_session_ids_are_refused(backend: Backend, session_id: str) -> None:
    driver = backend.driver
    metadata: UploadMetadata = {"size": 0}
    for call in (
        lambda: driver.append_upload(session_id, metadata, 0, [b"x"]),
        lambda: driver.upload_size(session_id, metadata),
        lambda: driver.read_upload(session_id, metadata),
        lambda: driver.complete_upload(session_id, metadata, FINAL),
        lambda: driver.cancel_upload(session_id, metadata),
    ):
        with pytest.raises(InvalidKeyError):
            call()
    assert backend.raw_entries() == []


def test_complete_refuses_a_malformed_final_key(driver: StorageDriver) -> None:
    session_id, metadata, _ = upload(driver, b"data")
    with pytest.raises(InvalidKeyError):
        driver.complete_upload(session_id, metadata, "../escape")
    assert driver.upload_size(session_id, metadata) == 4


def test_list_uploads_reports_last_modified_times(driver: StorageDriver) -> None:
    before = time.time() - 5
    session_id, _metadata, _ = upload(driver, b"x")
    sessions = dict(driver.list_uploads())
    assert before <= sessions[session_id] <= time.time() + 5


# The session lock (see docs/uploads.md) ---------------------------------------------------------

EXCLUSIVE = {"filesystem", "memory"}  # S3 grants it to all: its appends never clobber


def test_the_lock_is_exclusive_and_released_on_exit(backend: Backend) -> None:
    driver = backend.driver
    session_id, metadata = driver.initiate_upload()
    with driver.lock_upload(session_id):
        if backend.name in EXCLUSIVE:
            with pytest.raises(UploadBusyError), driver.lock_upload(session_id):
                pass
        _written, metadata = driver.append_upload(session_id, metadata, 0, [b"held"])
    with driver.lock_upload(session_id):  # free again
        assert read_all(driver.read_upload(session_id, persisted(metadata))) == b"held"


def test_the_lock_is_released_when_the_holder_fails(backend: Backend) -> None:
    driver = backend.driver
    session_id, metadata = driver.initiate_upload()
    with pytest.raises(ClientGoneError), driver.lock_upload(session_id):
        driver.append_upload(session_id, metadata, 0, failing(b"partial"))
    with driver.lock_upload(session_id):
        assert driver.upload_size(session_id, metadata) == 0


def test_a_gone_session_cannot_be_locked(backend: Backend) -> None:
    driver = backend.driver
    with pytest.raises(InvalidKeyError), driver.lock_upload("../escape"):
        pass
    if backend.name not in EXCLUSIVE:
        return  # granted without asking the backend: the next call finds the session gone
    with pytest.raises(ObjectNotFoundError), driver.lock_upload("0" * 32):
        pass
    session_id, metadata, _size = upload(driver, b"done")
    driver.complete_upload(session_id, metadata, FINAL)  # the file is now the blob
    with pytest.raises(ObjectNotFoundError), driver.lock_upload(session_id):
        pass
