"""Blob upload sessions: create, look up, update, delete, commit."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import pytest
from tests.model.builders import digest_of

from moorage.domain.errors import InvalidDigestError, UnknownLocationError
from moorage.domain.records import RepositoryReference, TorrentInfo
from moorage.model.sql import SqlRegistryModel


def test_create_and_lookup(model: SqlRegistryModel, repo: RepositoryReference) -> None:
    upload = model.create_blob_upload(repo, "upload-1", "local", {"some": "metadata"})
    assert upload is not None
    assert upload.storage_metadata == {"some": "metadata"}
    assert upload.location_name == "local"
    assert (upload.byte_count, upload.chunk_count, upload.sha_state) == (0, 0, None)
    assert model.lookup_blob_upload(repo, "upload-1") == upload


def test_create_in_a_missing_repository_or_unknown_location(
    model: SqlRegistryModel, repo: RepositoryReference
) -> None:
    assert model.create_blob_upload(replace(repo, id=repo.id + 99), "u", "local", {}) is None
    with pytest.raises(UnknownLocationError):
        model.create_blob_upload(repo, "u2", "nowhere", {})


def test_lookup_is_scoped_to_the_repository(
    model: SqlRegistryModel, repo: RepositoryReference, other_repo: RepositoryReference
) -> None:
    model.create_blob_upload(repo, "mine", "local", {})
    assert model.lookup_blob_upload(other_repo, "mine") is None
    assert model.lookup_blob_upload(repo, "unknown") is None


def test_update_keeps_every_field_as_raw_bytes(
    model: SqlRegistryModel, repo: RepositoryReference
) -> None:
    upload = model.create_blob_upload(repo, "u", "local", {})
    assert upload is not None
    state = bytes(range(256)) * 2  # opaque hash state, including NUL bytes
    updated = model.update_blob_upload(
        upload, 1, b"the-pieces_hash\x00", b"\x01piece", {"new": "metadata"}, 2, 3, state
    )
    assert updated is not None
    found = model.lookup_blob_upload(repo, "u")
    assert found is not None
    assert (found.uncompressed_byte_count, found.piece_hashes, found.piece_sha_state) == (
        1,
        b"the-pieces_hash\x00",
        b"\x01piece",
    )
    assert (found.storage_metadata, found.byte_count, found.chunk_count, found.sha_state) == (
        {"new": "metadata"},
        2,
        3,
        state,
    )
    model.delete_blob_upload(found)
    assert model.update_blob_upload(found, None, None, None, {}, 5, 5, None) is None


def test_delete_is_idempotent(model: SqlRegistryModel, repo: RepositoryReference) -> None:
    upload = model.create_blob_upload(repo, "u", "local", {})
    assert upload is not None
    model.delete_blob_upload(upload)
    model.delete_blob_upload(upload)
    assert model.lookup_blob_upload(repo, "u") is None


def test_commit_creates_a_linked_blob(model: SqlRegistryModel, repo: RepositoryReference) -> None:
    upload = model.create_blob_upload(repo, "u", "local", {})
    assert upload is not None
    upload = model.update_blob_upload(upload, 10, None, None, {}, 5, 1, None)
    assert upload is not None
    digest = "sha256:" + hashlib.sha256(b"hello").hexdigest()
    blob = model.commit_blob_upload(upload, digest, 60)
    assert blob is not None
    assert (blob.digest, blob.compressed_size, blob.uncompressed_size, blob.uploading) == (
        digest,
        5,
        10,
        False,
    )
    assert blob.placements == ("local",)
    assert model.lookup_blob_upload(repo, "u") is None
    assert model.get_repo_blob_by_digest(repo, digest) == blob
    assert model.commit_blob_upload(upload, digest, 60) is None  # the session is gone


def test_commit_deduplicates_by_digest(
    model: SqlRegistryModel, repo: RepositoryReference, other_repo: RepositoryReference
) -> None:
    first = model.create_blob_upload(repo, "a", "local", {})
    second = model.create_blob_upload(other_repo, "b", "remote", {})
    assert first is not None and second is not None
    one = model.commit_blob_upload(replace(first, byte_count=3), digest_of(b"abc"), 60)
    two = model.commit_blob_upload(replace(second, byte_count=3), digest_of(b"abc"), 60)
    assert one is not None and two is not None and one == two
    assert two.placements == ("local", "remote")
    assert model.get_repo_blob_by_digest(other_repo, digest_of(b"abc")) == one


def test_commit_refuses_malformed_digests(
    model: SqlRegistryModel, repo: RepositoryReference
) -> None:
    upload = model.create_blob_upload(repo, "u", "local", {})
    assert upload is not None
    for bad in ("sha256:ABC", "sha256:../../etc/passwd", "md5:abcd", "nonsense"):
        with pytest.raises(InvalidDigestError):
            model.commit_blob_upload(upload, bad, 60)
    assert model.lookup_blob_upload(repo, "u") == upload


def test_commit_records_torrent_info_with_the_blob(
    model: SqlRegistryModel, repo: RepositoryReference, other_repo: RepositoryReference
) -> None:
    first = model.create_blob_upload(repo, "a", "local", {})
    second = model.create_blob_upload(other_repo, "b", "local", {})
    assert first is not None and second is not None
    pieces = hashlib.sha1(b"abc").digest()
    one = model.commit_blob_upload(
        replace(first, byte_count=3), digest_of(b"abc"), 60, torrent_info=TorrentInfo(4, pieces)
    )
    assert one is not None
    assert model.get_torrent_info(one) == TorrentInfo(4, pieces)
    # The same blob again (deduplicated): the first torrent info stays.
    two = model.commit_blob_upload(
        replace(second, byte_count=3), digest_of(b"abc"), 60, torrent_info=TorrentInfo(4, b"x")
    )
    assert two == one
    assert model.get_torrent_info(one) == TorrentInfo(4, pieces)


def test_a_rolled_back_location_row_is_not_remembered(
    model: SqlRegistryModel, repo: RepositoryReference
) -> None:
    """The first use of a location creates its row inside the caller's transaction; if that
    rolls back, the id must not be reused (PostgreSQL sequences do not roll back)."""
    with pytest.raises(RuntimeError), model.database.write() as conn:
        model.location_id(conn, "remote")
        raise RuntimeError("the transaction fails")
    upload = model.create_blob_upload(repo, "u", "remote", {})
    assert upload is not None
    assert model.lookup_blob_upload(repo, "u") == upload
