"""Driver contract, objects: runs against every backend in conftest.BACKENDS."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from moorage.storage import InvalidKeyError, ObjectInfo, ObjectNotFoundError, StorageDriver
from storage.backends import Backend, ClientGoneError, failing

KEY = "objects/ab/thing/data"
DATA = bytes(range(256)) * 40  # 10 KiB, every byte value


def read_all(driver: StorageDriver, key: str, **kwargs: int | None) -> bytes:
    return b"".join(driver.read(key, **kwargs))  # type: ignore[arg-type]


def test_put_returns_size_and_stat_reports_it(driver: StorageDriver) -> None:
    assert driver.put(KEY, [DATA[:100], b"", DATA[100:]]) == len(DATA)
    assert driver.stat(KEY) == ObjectInfo(KEY, len(DATA))
    assert driver.exists(KEY)


def test_read_whole_object(driver: StorageDriver) -> None:
    driver.put(KEY, [DATA])
    assert read_all(driver, KEY) == DATA


def test_read_in_chunks_of_chunk_size(driver: StorageDriver) -> None:
    driver.put(KEY, [DATA])
    chunks = list(driver.read(KEY, chunk_size=1000))
    assert [len(c) for c in chunks] == [1000] * 10 + [240]
    assert b"".join(chunks) == DATA


@pytest.mark.parametrize(
    ("offset", "length"),
    [(0, 0), (0, 1), (10, 100), (5000, None), (len(DATA) - 1, 10), (0, len(DATA) + 5)],
)
def test_ranged_read(driver: StorageDriver, offset: int, length: int | None) -> None:
    driver.put(KEY, [DATA])
    expected = DATA[offset:] if length is None else DATA[offset : offset + length]
    assert read_all(driver, KEY, offset=offset, length=length, chunk_size=333) == expected


@pytest.mark.parametrize("offset", [len(DATA), len(DATA) + 1, 10**12])
def test_read_past_end_yields_nothing(driver: StorageDriver, offset: int) -> None:
    driver.put(KEY, [DATA])
    assert read_all(driver, KEY, offset=offset, length=10) == b""


@pytest.mark.parametrize(
    "kwargs", [{"offset": -1}, {"length": -1}, {"chunk_size": 0}, {"chunk_size": -5}]
)
def test_read_refuses_bad_range_arguments(driver: StorageDriver, kwargs: dict[str, int]) -> None:
    driver.put(KEY, [DATA])
    with pytest.raises(ValueError):
        read_all(driver, KEY, **kwargs)


def test_empty_object(driver: StorageDriver) -> None:
    assert driver.put(KEY, []) == 0
    assert driver.stat(KEY).size == 0
    assert read_all(driver, KEY) == b""


def test_missing_object_is_the_typed_not_found(driver: StorageDriver) -> None:
    for call in (
        lambda: driver.stat(KEY),
        lambda: driver.read(KEY),  # raised by the call, before iteration
        lambda: driver.local_path(KEY),
        lambda: driver.move(KEY, "other/key"),
    ):
        with pytest.raises(ObjectNotFoundError) as info:
            call()
        assert info.value.key == KEY
    assert not driver.exists(KEY)


def test_a_directory_is_not_an_object(driver: StorageDriver) -> None:
    driver.put("dir/sub/file", [b"x"])
    assert not driver.exists("dir/sub")
    with pytest.raises(ObjectNotFoundError):
        driver.stat("dir")
    driver.delete("dir")  # nothing to delete: fine
    assert driver.exists("dir/sub/file")


def test_failed_put_leaves_no_object_and_no_temp_files(backend: Backend) -> None:
    driver = backend.driver
    with pytest.raises(ClientGoneError):
        driver.put(KEY, failing(b"partial", b"data"))
    assert not driver.exists(KEY)
    assert list(driver.list("")) == []
    assert backend.raw_entries() == []


def test_failed_overwrite_keeps_the_old_object(backend: Backend) -> None:
    driver = backend.driver
    driver.put(KEY, [b"old"])
    with pytest.raises(ClientGoneError):
        driver.put(KEY, failing(b"new new new"))
    assert read_all(driver, KEY) == b"old"
    assert backend.raw_entries() == [KEY]


def test_put_refuses_non_bytes_chunks(driver: StorageDriver) -> None:
    with pytest.raises(TypeError):
        driver.put(KEY, ["text"])  # type: ignore[list-item]
    assert not driver.exists(KEY)


def test_overwrite(driver: StorageDriver) -> None:
    driver.put(KEY, [b"first version"])
    driver.put(KEY, [b"second"])
    assert read_all(driver, KEY) == b"second"
    assert driver.stat(KEY).size == 6


def test_delete_is_idempotent(backend: Backend) -> None:
    driver = backend.driver
    driver.put(KEY, [DATA])
    driver.delete(KEY)
    assert not driver.exists(KEY)
    driver.delete(KEY)
    driver.delete("never/existed")
    assert backend.raw_entries() == []


def test_move(driver: StorageDriver) -> None:
    driver.put("a/src", [b"payload"])
    driver.put("b/dst", [b"to be replaced"])
    driver.move("a/src", "b/dst")
    assert not driver.exists("a/src")
    assert read_all(driver, "b/dst") == b"payload"
    driver.move("b/dst", "c/d/e/new")
    assert read_all(driver, "c/d/e/new") == b"payload"
    assert sorted(driver.list("")) == ["c/d/e/new"]


def test_move_onto_itself_keeps_the_object(driver: StorageDriver) -> None:
    driver.put("a/src", [b"payload"])
    driver.move("a/src", "a/src")
    assert read_all(driver, "a/src") == b"payload"


def test_list_is_recursive_and_scoped_to_the_prefix(driver: StorageDriver) -> None:
    keys = ["a/1", "a/b/2", "a/b/c/3", "ab/4", "z"]
    for key in keys:
        driver.put(key, [key.encode()])
    assert sorted(driver.list("")) == keys
    assert sorted(driver.list("a")) == ["a/1", "a/b/2", "a/b/c/3"]
    assert sorted(driver.list("a/b")) == ["a/b/2", "a/b/c/3"]
    assert list(driver.list("missing")) == []
    assert list(driver.list("z")) == []  # an object is not a directory


def test_list_hides_upload_sessions(driver: StorageDriver) -> None:
    session_id, metadata = driver.initiate_upload()
    driver.append_upload(session_id, metadata, 0, [b"x"])
    driver.put("k", [b"v"])
    assert list(driver.list("")) == ["k"]


def test_redirect_url_is_none_for_local_backends(driver: StorageDriver) -> None:
    driver.put(KEY, [b"x"])
    assert driver.redirect_url(KEY, 60) is None


def test_local_path_is_none_or_an_existing_file(driver: StorageDriver) -> None:
    driver.put(KEY, [DATA])
    path = driver.local_path(KEY)
    if path is not None:
        assert path.is_file()
        assert path.read_bytes() == DATA


BAD_KEYS = ["../x", "a/../x", "/abs", "a//b", "a/", "", "a\x00b", "a\\b", ".", "a/./b", ".hidden"]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_every_key_operation_refuses_malformed_keys(driver: StorageDriver, key: str) -> None:
    calls: list[Callable[[], object]] = [
        lambda: driver.stat(key),
        lambda: driver.read(key),
        lambda: driver.local_path(key),
        lambda: driver.put(key, [b"x"]),
        lambda: driver.delete(key),
        lambda: driver.move(key, "ok"),
        lambda: driver.move("ok", key),
        lambda: driver.exists(key),
        lambda: driver.redirect_url(key, 60),
    ]
    driver.put("ok", [b"x"])
    for call in calls:
        with pytest.raises(InvalidKeyError):
            call()
    assert list(driver.list("")) == ["ok"]


@pytest.mark.parametrize("prefix", ["../x", "/abs", "a//b", "a/"])
def test_list_refuses_malformed_prefixes(driver: StorageDriver, prefix: str) -> None:
    with pytest.raises(InvalidKeyError):
        driver.list(prefix)


def test_the_uploads_area_is_not_addressable_as_keys(driver: StorageDriver) -> None:
    session_id, _ = driver.initiate_upload()
    with pytest.raises(InvalidKeyError):
        driver.stat(f"_uploads/{session_id}/data")
    with pytest.raises(InvalidKeyError):
        driver.put("_uploads/x", [b"x"])
