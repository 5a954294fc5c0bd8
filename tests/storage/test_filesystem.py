"""Filesystem driver specifics: containment under root, durability details, file handles."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from moorage.storage import (
    InvalidKeyError,
    ObjectNotFoundError,
    StorageDriver,
    UploadBusyError,
    create_driver,
)
from moorage.storage.filesystem import FilesystemDriver
from moorage.storage.health import check_local_root, prepare_local_root
from moorage.storage.keys import blob_key
from storage.backends import ClientGoneError, failing, read_all


def snapshot(directory: Path) -> set[str]:
    return {str(p.relative_to(directory)) for p in directory.rglob("*")}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "root"


@pytest.fixture(params=["wrapped", "bare"])
def fs(request: pytest.FixtureRequest, root: Path) -> StorageDriver:
    """The filesystem driver as the app gets it, and bare: it defends itself, too."""
    if request.param == "bare":
        return FilesystemDriver(root)
    return create_driver("filesystem", root=root)


def test_root_is_created_and_stays_healthy(root: Path, fs: StorageDriver) -> None:
    assert root.is_dir()
    fs.put("a/b", [b"x"])
    prepare_local_root(root)
    check_local_root(root)


def test_prepare_makes_the_blob_fanout_once(root: Path) -> None:
    prepare_local_root(root)
    fanout = sorted(path.name for path in (root / "blobs" / "sha256").iterdir())
    assert fanout == [f"{value:02x}" for value in range(256)]
    (root / "blobs" / "sha256" / "00" / "keep").write_bytes(b"a blob")
    prepare_local_root(root)  # a restart leaves everything as it was
    assert (root / "blobs" / "sha256" / "00" / "keep").read_bytes() == b"a blob"
    fs = create_driver("filesystem", root=root)
    digest = "sha256:" + "ab" * 32
    session_id, metadata = fs.initiate_upload()
    _, metadata = fs.append_upload(session_id, metadata, 0, [b"layer"])
    fs.complete_upload(session_id, metadata, blob_key(digest))
    assert (root / "blobs" / "sha256" / "ab" / ("ab" * 32)).read_bytes() == b"layer"


def test_objects_land_at_their_key_under_root(root: Path, fs: StorageDriver) -> None:
    fs.put("blobs/sha256/ab/cd/data", [b"bytes"])
    assert (root / "blobs/sha256/ab/cd/data").read_bytes() == b"bytes"


def test_local_path_is_the_existing_file(root: Path, fs: StorageDriver) -> None:
    fs.put("k/data", [b"zero copy"])
    path = fs.local_path("k/data")
    assert path is not None
    assert path.is_file()
    assert path.resolve() == (root / "k/data").resolve()
    assert path.read_bytes() == b"zero copy"
    with pytest.raises(ObjectNotFoundError):
        fs.local_path("missing/data")


@pytest.mark.parametrize("session_id", ["../../etc", "../x", "/etc", "..", "a/../../b"])
def test_hostile_session_ids_never_touch_the_disk(
    tmp_path: Path, fs: StorageDriver, session_id: str
) -> None:
    before = snapshot(tmp_path)
    metadata = {"size": 0}
    for call in (
        lambda: fs.append_upload(session_id, metadata, 0, [b"pwned"]),
        lambda: fs.upload_size(session_id, metadata),
        lambda: fs.read_upload(session_id, metadata),
        lambda: fs.complete_upload(session_id, metadata, "final/data"),
        lambda: fs.cancel_upload(session_id, metadata),
    ):
        with pytest.raises(InvalidKeyError):
            call()
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("key", ["../outside", "a/../../outside", "/tmp/outside", "a\\..\\b"])
def test_hostile_keys_never_touch_the_disk(tmp_path: Path, fs: StorageDriver, key: str) -> None:
    before = snapshot(tmp_path)
    with pytest.raises(InvalidKeyError):
        fs.put(key, [b"pwned"])
    with pytest.raises(InvalidKeyError):
        fs.move("a", key)
    assert snapshot(tmp_path) == before


def test_symlinks_out_of_root_are_refused(tmp_path: Path, root: Path, fs: StorageDriver) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"secret")
    (root / "evil").symlink_to(outside, target_is_directory=True)
    with pytest.raises(InvalidKeyError):
        fs.read("evil/secret")
    with pytest.raises(InvalidKeyError):
        fs.put("evil/planted", [b"x"])
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]


def test_a_link_as_the_last_component_is_followed_only_inside_the_root(
    tmp_path: Path, root: Path, fs: StorageDriver
) -> None:
    outside = tmp_path / "secret"
    outside.write_bytes(b"secret")
    fs.put("a/real", [b"inside"])
    (root / "a" / "out").symlink_to(outside)
    (root / "a" / "in").symlink_to(root / "a" / "real")
    with pytest.raises(InvalidKeyError):
        fs.read("a/out")
    with pytest.raises(InvalidKeyError):
        fs.stat("a/out")
    assert read_all(fs.read("a/in")) == b"inside"


def test_a_directory_turned_into_a_link_is_refused(
    tmp_path: Path, root: Path, fs: StorageDriver
) -> None:
    """Checked directories are remembered until the driver prunes directories."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "data").write_bytes(b"secret")
    fs.put("d/data", [b"x"])
    assert read_all(fs.read("d/data")) == b"x"
    fs.delete("d/data")
    (root / "d").symlink_to(outside, target_is_directory=True)
    with pytest.raises(InvalidKeyError):
        fs.read("d/data")


def test_completing_onto_a_link_replaces_the_link(
    tmp_path: Path, root: Path, fs: StorageDriver
) -> None:
    outside = tmp_path / "target"
    outside.write_bytes(b"untouched")
    fs.put("blobs/other", [b"y"])
    (root / "blobs" / "final").symlink_to(outside)
    session_id, metadata = fs.initiate_upload()
    _, metadata = fs.append_upload(session_id, metadata, 0, [b"content"])
    fs.complete_upload(session_id, metadata, "blobs/final")
    assert not (root / "blobs" / "final").is_symlink()
    assert read_all(fs.read("blobs/final")) == b"content"
    assert outside.read_bytes() == b"untouched"


def test_temp_files_and_foreign_names_are_not_listed(root: Path, fs: StorageDriver) -> None:
    fs.put("a/data", [b"x"])
    (root / "a" / ".data.tmp-abc").write_bytes(b"half")
    (root / "a" / "bad name").write_bytes(b"?")
    assert list(fs.list("")) == ["a/data"]


def test_failed_put_removes_its_temp_file(root: Path, fs: StorageDriver) -> None:
    with pytest.raises(ClientGoneError):
        fs.put("x/y/data", failing(b"a" * 100_000))
    assert [p for p in root.rglob("*") if p.is_file()] == []


def test_delete_prunes_empty_directories(root: Path, fs: StorageDriver) -> None:
    fs.put("a/b/c/data", [b"x"])
    fs.put("a/keep", [b"y"])
    fs.delete("a/b/c/data")
    assert not (root / "a" / "b").exists()
    assert (root / "a" / "keep").exists()
    fs.delete("a/keep")
    assert root.is_dir()
    assert list(root.iterdir()) == []


def test_a_reader_keeps_the_version_it_opened(fs: StorageDriver) -> None:
    fs.put("k", [b"A" * 10])
    chunks = fs.read("k", chunk_size=4)
    first = next(chunks)
    fs.put("k", [b"B" * 10])
    fs.delete("k")
    assert first + b"".join(chunks) == b"A" * 10


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
def test_read_iterators_release_their_file(fs: StorageDriver) -> None:
    fs.put("k", [b"x" * 100])
    before = _open_fds()
    chunks = fs.read("k", chunk_size=10)
    next(chunks)
    chunks.close()  # type: ignore[attr-defined]
    read_all(fs.read("k"))
    unconsumed = fs.read("k")
    del unconsumed
    assert _open_fds() == before


def test_an_interrupted_append_is_truncated_on_disk(root: Path, fs: StorageDriver) -> None:
    session_id, metadata = fs.initiate_upload()
    _, metadata = fs.append_upload(session_id, metadata, 0, [b"12345"])
    with pytest.raises(ClientGoneError):
        fs.append_upload(session_id, metadata, 5, failing(b"garbage"))
    assert (root / "_uploads" / session_id).read_bytes() == b"12345"


def test_append_discards_leftover_bytes_past_the_offset(root: Path, fs: StorageDriver) -> None:
    session_id, metadata = fs.initiate_upload()
    _, metadata = fs.append_upload(session_id, metadata, 0, [b"12345"])
    with (root / "_uploads" / session_id).open("ab") as data:
        data.write(b"left by a crashed worker")
    _, metadata = fs.append_upload(session_id, metadata, 5, [b"678"])
    assert read_all(fs.read_upload(session_id, metadata)) == b"12345678"
    fs.complete_upload(session_id, metadata, "final/data")
    assert (root / "final/data").read_bytes() == b"12345678"
    assert list((root / "_uploads").iterdir()) == []


def test_complete_ignores_uncommitted_tail(root: Path, fs: StorageDriver) -> None:
    session_id, metadata = fs.initiate_upload()
    _, metadata = fs.append_upload(session_id, metadata, 0, [b"abc"])
    with (root / "_uploads" / session_id).open("ab") as data:
        data.write(b"tail")
    fs.complete_upload(session_id, metadata, "final/data")
    assert (root / "final/data").read_bytes() == b"abc"


def test_list_uploads_skips_foreign_entries(root: Path, fs: StorageDriver) -> None:
    assert list(fs.list_uploads()) == []
    session_id, _ = fs.initiate_upload()
    (root / "_uploads" / "junk").mkdir()
    (root / "_uploads" / ("f" * 32)).mkdir()  # a valid id without data: half-cancelled
    assert [sid for sid, _ in fs.list_uploads()] == [session_id]


def test_sessions_are_single_files(root: Path, fs: StorageDriver) -> None:
    session_id, metadata = fs.initiate_upload()
    fs.append_upload(session_id, metadata, 0, [b"layer"])
    assert [entry.name for entry in (root / "_uploads").iterdir()] == [session_id]
    assert (root / "_uploads" / session_id).read_bytes() == b"layer"


def test_an_earlier_versions_session_directory_is_listed_and_removed_not_continued(
    root: Path, fs: StorageDriver
) -> None:
    """Sessions used to be ``_uploads/<id>/data``: cleanup must still find and end them,
    and a chunk for one is refused as unknown (the client starts over)."""
    fs.initiate_upload()  # makes _uploads
    legacy = "e" * 32
    (root / "_uploads" / legacy).mkdir()
    (root / "_uploads" / legacy / "data").write_bytes(b"old bytes")
    assert legacy in dict(fs.list_uploads())
    with pytest.raises(ObjectNotFoundError):
        fs.append_upload(legacy, {"size": 9}, 9, [b"more"])
    with pytest.raises(ObjectNotFoundError):
        fs.upload_size(legacy, {"size": 9})
    fs.cancel_upload(legacy, {"size": 9})
    assert not (root / "_uploads" / legacy).exists()
    assert legacy not in dict(fs.list_uploads())


def test_another_driver_instance_continues_an_upload(root: Path) -> None:
    """State is on disk plus the caller's metadata: any worker process can take the next chunk."""
    first = create_driver("filesystem", root=root)
    session_id, metadata = first.initiate_upload()
    _, metadata = first.append_upload(session_id, metadata, 0, [b"from worker 1, "])
    second = create_driver("filesystem", root=root)
    _, metadata = second.append_upload(session_id, metadata, 15, [b"then worker 2"])
    second.complete_upload(session_id, metadata, "final/data")
    assert read_all(first.read("final/data")) == b"from worker 1, then worker 2"


def test_a_session_lock_is_shared_by_processes_and_dies_with_its_holder(root: Path) -> None:
    """Workers are processes: the lock must exclude another process, and a holder killed
    with SIGKILL (no cleanup at all) must leave the session free."""
    driver = create_driver("filesystem", root=root)
    session_id, _ = driver.initiate_upload()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from moorage.storage import create_driver\n"
            f"driver = create_driver('filesystem', root={str(root)!r})\n"
            f"with driver.lock_upload({session_id!r}):\n"
            "    print('held', flush=True)\n"
            "    time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(UploadBusyError), driver.lock_upload(session_id):
            pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
    with driver.lock_upload(session_id):
        assert driver.upload_size(session_id, {"size": 0}) == 0
