"""Derived images (squash/ACI outputs), their sizes and signatures."""

from __future__ import annotations

import pytest
from tests.model.builders import push_artifact, push_image, push_index

from moorage.domain.errors import UnknownLocationError, UnknownSignerError
from moorage.domain.records import Manifest, RepositoryReference
from moorage.model.sql import SqlRegistryModel


@pytest.fixture
def manifest(model: SqlRegistryModel, repo: RepositoryReference) -> Manifest:
    return push_image(model, repo, [b"base", b"leaf"]).manifest


def test_lookup_or_create_then_complete(model: SqlRegistryModel, manifest: Manifest) -> None:
    assert model.lookup_derived_image(manifest, "squash", {}) is None
    created = model.lookup_or_create_derived_image(manifest, "squash", "local", {})
    assert created is not None
    assert created.blob.uploading is True and created.blob.compressed_size is None
    assert created.blob.content_addressed is False and created.blob.digest is None
    assert len(created.unique_id) == 64
    again = model.lookup_or_create_derived_image(manifest, "squash", "local", {})
    assert again == created and again is not None and again.unique_id == created.unique_id
    # {} and None are the same key.
    assert model.lookup_derived_image(manifest, "squash", None) == created
    done = model.set_derived_image_size(created, 1234)
    assert done is not None and done.blob.compressed_size == 1234 and done.blob.uploading is False
    found = model.lookup_derived_image(manifest, "squash")
    assert found == created and found is not None and found.blob.compressed_size == 1234
    assert found.unique_id == created.unique_id


def test_varying_metadata_and_verb_make_separate_images(
    model: SqlRegistryModel, manifest: Manifest
) -> None:
    plain = model.lookup_or_create_derived_image(manifest, "squash", "local")
    tagged = model.lookup_or_create_derived_image(manifest, "squash", "local", {"tag": "latest"})
    nested = model.lookup_or_create_derived_image(
        manifest, "squash", "local", {"b": {"y": 1, "x": 2}, "a": 1}
    )
    aci = model.lookup_or_create_derived_image(manifest, "aci", "local")
    ids = {d.unique_id for d in (plain, tagged, nested, aci) if d is not None}
    assert len(ids) == 4
    # Key order does not matter: the metadata is canonicalized.
    same = model.lookup_derived_image(manifest, "squash", {"a": 1, "b": {"x": 2, "y": 1}})
    assert same == nested
    assert tagged is not None and tagged.varying_metadata == {"tag": "latest"}


def test_placements_of_derived_images(model: SqlRegistryModel, manifest: Manifest) -> None:
    derived = model.lookup_or_create_derived_image(
        manifest, "squash", "remote", include_placements=True
    )
    assert derived is not None and derived.blob.placements == ("remote",)
    with pytest.raises(UnknownLocationError):
        model.lookup_or_create_derived_image(manifest, "aci", "nowhere")


def test_derived_images_of_lists_use_the_amd64_child(
    model: SqlRegistryModel, repo: RepositoryReference, manifest: Manifest
) -> None:
    arm = push_image(model, repo, [b"arm"], seed="arm").manifest
    index = push_index(model, repo, [(arm, "arm64"), (manifest, "amd64")])
    via_list = model.lookup_or_create_derived_image(index, "squash", "local")
    assert via_list is not None
    assert model.lookup_derived_image(manifest, "squash") == via_list
    arm_only = push_index(model, repo, [(arm, "arm64")])
    assert model.lookup_or_create_derived_image(arm_only, "squash", "local") is None


def test_artifacts_have_no_derived_images(
    model: SqlRegistryModel, repo: RepositoryReference, manifest: Manifest
) -> None:
    artifact = push_artifact(model, repo, manifest)
    assert model.lookup_or_create_derived_image(artifact, "squash", "local") is None
    assert model.lookup_derived_image(artifact, "squash") is None


def test_signatures(model: SqlRegistryModel, manifest: Manifest) -> None:
    derived = model.lookup_or_create_derived_image(manifest, "aci", "local")
    assert derived is not None
    assert model.get_derived_image_signature(derived, "gpg2") is None
    model.set_derived_image_signature(derived, "gpg2", "foo")
    assert model.get_derived_image_signature(derived, "gpg2") == "foo"
    model.set_derived_image_signature(derived, "gpg2", "bar")
    assert model.get_derived_image_signature(derived, "gpg2") == "bar"
    with pytest.raises(UnknownSignerError):
        model.set_derived_image_signature(derived, "pgp-unknown", "x")


def test_delete_derived_image_removes_everything_hanging_off_it(
    model: SqlRegistryModel, manifest: Manifest
) -> None:
    derived = model.lookup_or_create_derived_image(manifest, "squash", "local", {"tag": "t"})
    assert derived is not None
    model.set_derived_image_signature(derived, "gpg2", "sig")
    model.set_torrent_info(derived.blob, 512, b"p" * 20)
    model.delete_derived_image(derived)
    assert model.lookup_derived_image(manifest, "squash", {"tag": "t"}) is None
    assert model.get_derived_image_signature(derived, "gpg2") is None
    assert model.get_torrent_info(derived.blob) is None
    assert model.set_derived_image_size(derived, 10) is None
    # A new one can be made afterwards.
    assert model.lookup_or_create_derived_image(manifest, "squash", "local", {"tag": "t"})
