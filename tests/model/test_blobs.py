"""Blobs as repositories see them, mounts, placements and torrent info."""

from __future__ import annotations

import hashlib

from tests.model.builders import digest_of, push_blob, push_image
from tests.model.conftest import FakeClock

from moorage.domain.digest import EMPTY_LAYER_BYTES, EMPTY_LAYER_DIGEST
from moorage.domain.records import RepositoryReference
from moorage.model.sql import SqlRegistryModel


def test_repo_blob_visibility(
    model: SqlRegistryModel, repo: RepositoryReference, other_repo: RepositoryReference
) -> None:
    blob = push_blob(model, repo, b"hello")
    found = model.get_repo_blob_by_digest(repo, digest_of(b"hello"), include_placements=True)
    assert found == blob and found is not None
    assert (found.digest, found.compressed_size, found.placements) == (
        digest_of(b"hello"),
        5,
        ("local",),
    )
    assert model.get_repo_blob_by_digest(other_repo, digest_of(b"hello")) is None
    assert model.get_repo_blob_by_digest(repo, digest_of(b"never")) is None


def test_mount_links_without_copying(
    model: SqlRegistryModel, repo: RepositoryReference, other_repo: RepositoryReference
) -> None:
    blob = push_blob(model, repo, b"shared")
    assert model.mount_blob_into_repository(blob, other_repo, 3600) is True
    mounted = model.get_repo_blob_by_digest(other_repo, digest_of(b"shared"))
    assert mounted == blob  # the same global row


def test_temp_links_expire_unless_a_manifest_holds_the_blob(
    model: SqlRegistryModel, repo: RepositoryReference, clock: FakeClock
) -> None:
    push_blob(model, repo, b"orphan", expiration_s=60)
    image = push_image(model, repo, [b"kept"])
    clock.advance(3601)
    assert model.get_repo_blob_by_digest(repo, digest_of(b"orphan")) is None
    assert model.get_repo_blob_by_digest(repo, digest_of(b"kept")) is not None
    assert model.get_repo_blob_by_digest(repo, digest_of(image.config)) is not None


def test_the_empty_layer_is_visible_everywhere(
    model: SqlRegistryModel, repo: RepositoryReference, other_repo: RepositoryReference
) -> None:
    push_blob(model, repo, EMPTY_LAYER_BYTES, expiration_s=1)
    assert model.get_repo_blob_by_digest(other_repo, EMPTY_LAYER_DIGEST) is not None


def test_placements_accumulate(model: SqlRegistryModel, repo: RepositoryReference) -> None:
    blob = push_blob(model, repo, b"replicated")
    model.add_blob_placement(blob, "remote")
    model.add_blob_placement(blob, "remote")
    found = model.get_repo_blob_by_digest(repo, digest_of(b"replicated"), include_placements=True)
    assert found is not None and found.placements == ("local", "remote")


def test_torrent_info_first_write_wins(model: SqlRegistryModel, repo: RepositoryReference) -> None:
    blob = push_blob(model, repo, b"seed me")
    other = push_blob(model, repo, b"other")
    assert model.get_torrent_info(blob) is None
    pieces = hashlib.sha1(b"seed me").digest()
    info = model.set_torrent_info(blob, 2, pieces)
    assert (info.piece_length, info.pieces) == (2, pieces)
    assert model.set_torrent_info(blob, 2, b"x" * 20).pieces == pieces  # never overwritten
    model.set_torrent_info(blob, 3, b"bar")
    got = model.get_torrent_info(blob)
    assert got is not None and (got.piece_length, got.pieces) == (2, pieces)
    assert model.get_torrent_info(other) is None
