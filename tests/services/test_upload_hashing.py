"""Large uploads are hashed on a helper thread while they are written: the digest, the
resumable state between chunks and the torrent pieces must be those of the bytes."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator

import pytest

from moorage.domain.errors import DigestMismatchError
from moorage.domain.records import RepositoryReference
from moorage.model.sql import SqlRegistryModel
from moorage.services.registry import RegistryServices, build_services
from moorage.services.uploads import DEFAULT_PIECE_LENGTH, UploadSettings, _Reader
from moorage.storage import StorageLocations

BLOCK = 64 * 1024


@pytest.fixture
def services(model: SqlRegistryModel, locations: StorageLocations) -> RegistryServices:
    """Torrents on: pieces are hashed while the body is written (off, nothing is)."""
    return build_services(model, locations, uploads=UploadSettings(hash_pieces=True))


def _chunks(data: bytes) -> Iterator[bytes]:
    for start in range(0, len(data), BLOCK):
        yield data[start : start + BLOCK]


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _pieces(data: bytes) -> bytes:
    return b"".join(
        hashlib.sha1(data[start : start + DEFAULT_PIECE_LENGTH]).digest()
        for start in range(0, len(data), DEFAULT_PIECE_LENGTH)
    )


def _helpers() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "upload-hashing"]


def test_a_body_past_the_inline_limit_gets_the_right_digest_and_pieces(
    services: RegistryServices, repo: RepositoryReference
) -> None:
    data = os.urandom(_Reader.INLINE_HASHING * 2 + 12345)
    blob = services.uploads.upload_whole(repo, _digest(data), _chunks(data), len(data))
    assert blob.digest == _digest(data)
    torrent = services.uploads.model.get_torrent_info(blob)
    assert torrent is not None and torrent.pieces == _pieces(data)
    assert _helpers() == []


def test_chunked_upload_resumes_from_a_state_hashed_in_the_background(
    services: RegistryServices, repo: RepositoryReference
) -> None:
    data = os.urandom(_Reader.INLINE_HASHING + 3 * BLOCK + 7)
    first, rest = data[: _Reader.INLINE_HASHING + BLOCK], data[_Reader.INLINE_HASHING + BLOCK :]
    uploads = services.uploads
    session = uploads.start(repo)
    assert uploads.append(repo, session.upload_id, _chunks(first)).size == len(first)
    blob = uploads.finish(repo, session.upload_id, _digest(data), _chunks(rest))
    assert blob.digest == _digest(data)
    torrent = uploads.model.get_torrent_info(blob)
    assert torrent is not None and torrent.pieces == _pieces(data)


def test_a_wrong_digest_is_still_refused(
    services: RegistryServices, repo: RepositoryReference
) -> None:
    data = os.urandom(_Reader.INLINE_HASHING + BLOCK)
    with pytest.raises(DigestMismatchError):
        services.uploads.upload_whole(repo, _digest(data + b"!"), _chunks(data), len(data))
    assert _helpers() == []


def test_a_body_failing_midway_leaves_no_helper_behind(
    services: RegistryServices, repo: RepositoryReference
) -> None:
    def broken() -> Iterator[bytes]:
        yield from _chunks(os.urandom(_Reader.INLINE_HASHING + 2 * BLOCK))
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        services.uploads.upload_whole(repo, "sha256:" + "0" * 64, broken(), None)
    assert _helpers() == []
