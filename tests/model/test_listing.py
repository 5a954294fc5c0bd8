"""Manifest deletion, referrers and the name listings behind the V2 API."""

from __future__ import annotations

import pytest
from tests.model.builders import digest_of, push_artifact, push_blob, push_image

from moorage.domain.records import RepositoryKind, RepositoryReference
from moorage.model.sql import SqlRegistryModel


def test_delete_manifest_ends_its_tags_and_hides_it(
    model: SqlRegistryModel, repo: RepositoryReference
) -> None:
    image = push_image(model, repo, [b"layer"])
    model.retarget_tag(repo, "a", image.manifest)
    model.retarget_tag(repo, "b", image.manifest)
    model.create_manifest(
        repo,
        image.manifest.internal_manifest_bytes,
        image.manifest.media_type,
        temp_tag_expiration_s=300,
    )
    assert model.delete_manifest(repo, image.manifest) is True
    assert model.lookup_manifest_by_digest(repo, image.manifest.digest) is None
    assert model.get_repo_tag(repo, "a") is None and model.get_repo_tag(repo, "b") is None
    assert len(model.list_repository_tag_history(repo)[0]) == 2  # history keeps them
    # Its layers are no longer visible through it.
    assert model.get_repo_blob_by_digest(repo, digest_of(b"layer")) is not None  # upload link
    # Pushing it again brings it back.
    model.create_manifest(repo, image.manifest.internal_manifest_bytes, image.manifest.media_type)
    model.retarget_tag(repo, "a", image.manifest)
    assert model.lookup_manifest_by_digest(repo, image.manifest.digest) is not None


def test_delete_manifest_of_another_repository(
    model: SqlRegistryModel, repo: RepositoryReference, other_repo: RepositoryReference
) -> None:
    image = push_image(model, repo, [b"x"])
    assert model.delete_manifest(other_repo, image.manifest) is False


def test_referrers(model: SqlRegistryModel, repo: RepositoryReference) -> None:
    image = push_image(model, repo, [b"subject"])
    first = push_artifact(model, repo, image.manifest)
    assert model.list_referrers(repo, image.manifest.digest) == [first]
    assert model.list_referrers(repo, digest_of(b"nothing")) == []
    model.delete_manifest(repo, first)
    assert model.list_referrers(repo, image.manifest.digest) == []


def test_tag_names_are_bytewise_and_paged(
    model: SqlRegistryModel, repo: RepositoryReference
) -> None:
    image = push_image(model, repo, [b"x"])
    for name in ["b", "B", "a", "_z", "10", "9", "gone"]:
        model.retarget_tag(repo, name, image.manifest)
    model.delete_tag(repo, "gone")
    assert model.list_tag_names(repo) == ["10", "9", "B", "_z", "a", "b"]
    assert model.list_tag_names(repo, after="9", limit=2) == ["B", "_z"]
    assert model.list_tag_names(repo, after="zz") == []
    assert model.list_tag_names(repo, limit=0) == []


def test_repository_names(model: SqlRegistryModel, repo: RepositoryReference) -> None:
    model.create_repository("devtable", "a/nested")
    model.create_repository("devtable", "chart", kind=RepositoryKind.APPLICATION)
    model.create_namespace("off")
    model.create_repository("off", "hidden")
    model.set_namespace_enabled("off", False)
    assert model.list_repository_names() == ["devtable/a/nested", "devtable/simple"]
    assert model.list_repository_names(after="devtable/a/nested") == ["devtable/simple"]
    assert model.list_repository_names(limit=1) == ["devtable/a/nested"]


def test_blob_links_can_be_removed(model: SqlRegistryModel, repo: RepositoryReference) -> None:
    blob = push_blob(model, repo, b"unwanted")
    assert model.remove_blob_links(repo, blob) is True
    assert model.get_repo_blob_by_digest(repo, digest_of(b"unwanted")) is None


@pytest.mark.parametrize("count", [3])
def test_deleted_manifest_blobs_drop_out_of_view(
    model: SqlRegistryModel, repo: RepositoryReference, count: int
) -> None:
    image = push_image(model, repo, [f"l{i}".encode() for i in range(count)])
    blobs = [model.get_repo_blob_by_digest(repo, digest_of(f"l{i}".encode())) for i in range(count)]
    for blob in blobs:
        assert blob is not None
        assert model.remove_blob_links(repo, blob) is False  # the manifest holds it
    model.delete_manifest(repo, image.manifest)
    assert model.get_repo_blob_by_digest(repo, digest_of(b"l0")) is not None  # upload link
    for blob in blobs:
        assert blob is not None and model.remove_blob_links(repo, blob) is True
    assert model.get_repo_blob_by_digest(repo, digest_of(b"l0")) is None
