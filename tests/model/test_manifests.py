"""get_manifest_for_tag, lookup_manifest_by_digest, list_manifest_layers, create_manifest."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from tests.model.builders import (
    LAYER_TYPE,
    digest_of,
    push_artifact,
    push_blob,
    push_image,
    push_index,
    push_v1_chain,
)
from tests.model.conftest import FakeClock

from moorage.domain.errors import BlobUnknownError, ManifestError, ManifestUnknownError
from moorage.domain.media_types import DOCKER_SCHEMA2_MANIFEST, OCI_IMAGE_MANIFEST
from moorage.domain.records import RepositoryReference
from moorage.model.sql import SqlRegistryModel


def test_get_manifest_for_tag(model: SqlRegistryModel, repo: RepositoryReference) -> None:
    image = push_image(model, repo, [b"a", b"b"])
    tag = model.retarget_tag(repo, "latest", image.manifest)
    assert tag is not None
    manifest = model.get_manifest_for_tag(tag)
    assert manifest == image.manifest
    assert manifest is not None and manifest.digest == tag.manifest_digest
    assert manifest.internal_manifest_bytes == image.manifest.internal_manifest_bytes
    # A dead version still knows its manifest (history, restore).
    model.delete_tag(repo, "latest")
    assert model.get_manifest_for_tag(tag) == image.manifest


def test_get_manifest_for_a_v1_tag_needs_a_backfill(
    model: SqlRegistryModel, repo: RepositoryReference
) -> None:
    leaf = push_v1_chain(model, repo, ["base", "leaf"])
    tag = model.retarget_tag(repo, "v1", leaf)
    assert tag is not None
    assert model.get_manifest_for_tag(tag) is None
    manifest = model.get_manifest_for_tag(tag, backfill_if_necessary=True)
    assert manifest is not None
    again = model.get_repo_tag(repo, "v1")
    assert again is not None and again.manifest_digest == manifest.digest


def test_lookup_manifest_by_digest(model: SqlRegistryModel, repo: RepositoryReference) -> None:
    image = push_image(model, repo, [b"base", b"leaf"])
    model.retarget_tag(repo, "latest", image.manifest)
    found = model.lookup_manifest_by_digest(repo, image.manifest.digest, include_legacy_image=True)
    assert found == image.manifest
    assert found is not None and found.legacy_image is not None
    assert len(found.legacy_image.parents) == 1
    assert model.lookup_manifest_by_digest(repo, "sha256:deadbeef") is None


def test_lookup_manifest_by_digest_is_scoped_to_the_repository(
    model: SqlRegistryModel, repo: RepositoryReference, other_repo: RepositoryReference
) -> None:
    image = push_image(model, repo, [b"x"])
    model.retarget_tag(repo, "latest", image.manifest)
    assert model.lookup_manifest_by_digest(other_repo, image.manifest.digest) is None
    assert (
        model.lookup_manifest_by_digest(other_repo, image.manifest.digest, allow_dead=True) is None
    )


def test_dead_manifests_need_allow_dead(model: SqlRegistryModel, repo: RepositoryReference) -> None:
    image = push_image(model, repo, [b"x"])
    model.retarget_tag(repo, "latest", image.manifest)
    model.delete_tag(repo, "latest")
    assert model.lookup_manifest_by_digest(repo, image.manifest.digest) is None
    assert model.lookup_manifest_by_digest(repo, image.manifest.digest, allow_dead=True) is not None
    # An untagged manifest is not pullable by digest either.
    untagged = push_image(model, repo, [b"untagged"], seed="u")
    assert model.lookup_manifest_by_digest(repo, untagged.manifest.digest) is None


def test_temp_tag_keeps_an_untagged_manifest_reachable_for_a_while(
    model: SqlRegistryModel, repo: RepositoryReference, clock: FakeClock
) -> None:
    image = push_image(model, repo, [b"child"])
    model.create_manifest(
        repo,
        image.manifest.internal_manifest_bytes,
        image.manifest.media_type,
        temp_tag_expiration_s=300,
    )
    assert model.lookup_manifest_by_digest(repo, image.manifest.digest) is not None
    assert model.list_repository_tags(repo) == []
    clock.advance(301)
    assert model.lookup_manifest_by_digest(repo, image.manifest.digest) is None


def test_children_of_a_tagged_list_are_reachable(
    model: SqlRegistryModel, repo: RepositoryReference
) -> None:
    amd = push_image(model, repo, [b"amd64"], seed="amd")
    arm = push_image(model, repo, [b"arm64"], seed="arm")
    index = push_index(model, repo, [(amd.manifest, "amd64"), (arm.manifest, "arm64")])
    assert index.is_manifest_list
    assert model.lookup_manifest_by_digest(repo, arm.manifest.digest) is None
    model.retarget_tag(repo, "multi", index)
    assert model.lookup_manifest_by_digest(repo, arm.manifest.digest) == arm.manifest
    model.delete_tag(repo, "multi")
    assert model.lookup_manifest_by_digest(repo, arm.manifest.digest) is None


def test_manifest_bytes_are_kept_exactly(
    model: SqlRegistryModel, repo: RepositoryReference
) -> None:
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "comment": "\u2728 caf\u00e9",
            "history": [{"created_by": "\U0001f600"}],
        },
        ensure_ascii=False,
    ).encode()
    layer = b"emoji layer"
    push_blob(model, repo, config)
    push_blob(model, repo, layer)
    config_ref = {
        "mediaType": "application/vnd.docker.container.image.v1+json",
        "digest": digest_of(config),
        "size": len(config),
    }
    layer_ref = {"mediaType": LAYER_TYPE, "digest": digest_of(layer), "size": len(layer)}
    # Odd spacing and raw non-ASCII text: the stored bytes must be these, not a re-encoding.
    body = (
        '{\n  "schemaVersion": 2,\n  "mediaType": "'
        + DOCKER_SCHEMA2_MANIFEST
        + '",\n'
        + '  "config": '
        + json.dumps(config_ref)
        + ",\n"
        + '  "layers": ['
        + json.dumps(layer_ref)
        + "],\n"
        + '  "annotations_ignored": "\u2603 snow"\n}'
    ).encode()
    manifest = model.create_manifest(repo, body, DOCKER_SCHEMA2_MANIFEST)
    model.retarget_tag(repo, "unicode", manifest)
    found = model.lookup_manifest_by_digest(repo, digest_of(body))
    assert found is not None and found.internal_manifest_bytes == body
    assert found.digest == digest_of(body)


def test_create_manifest_requires_visible_blobs(
    model: SqlRegistryModel, repo: RepositoryReference, other_repo: RepositoryReference
) -> None:
    image = push_image(model, other_repo, [b"only over there"])
    with pytest.raises(BlobUnknownError) as info:
        model.create_manifest(
            repo, image.manifest.internal_manifest_bytes, image.manifest.media_type
        )
    assert info.value.digest.startswith("sha256:")
    assert model.lookup_manifest_by_digest(repo, image.manifest.digest, allow_dead=True) is None


def test_create_manifest_requires_list_children(
    model: SqlRegistryModel, repo: RepositoryReference, other_repo: RepositoryReference
) -> None:
    child = push_image(model, other_repo, [b"child elsewhere"])
    with pytest.raises(ManifestUnknownError):
        push_index(model, repo, [(child.manifest, "amd64")])


def test_create_manifest_refuses_bodies_that_disagree_with_the_media_type(
    model: SqlRegistryModel, repo: RepositoryReference
) -> None:
    image = push_image(model, repo, [b"x"])
    with pytest.raises(ManifestError):
        model.create_manifest(repo, image.manifest.internal_manifest_bytes, OCI_IMAGE_MANIFEST)
    with pytest.raises(ManifestError):
        model.create_manifest(repo, b"not json", DOCKER_SCHEMA2_MANIFEST)


def test_create_manifest_is_idempotent(model: SqlRegistryModel, repo: RepositoryReference) -> None:
    image = push_image(model, repo, [b"x"])
    again = model.create_manifest(
        repo, image.manifest.internal_manifest_bytes, image.manifest.media_type
    )
    assert again == image.manifest


def test_artifact_keeps_subject_and_type(
    model: SqlRegistryModel, repo: RepositoryReference
) -> None:
    image = push_image(model, repo, [b"x"])
    artifact = push_artifact(model, repo, image.manifest)
    assert artifact.subject_digest == image.manifest.digest
    assert artifact.artifact_type == "application/vnd.example.sbom"


def test_list_manifest_layers(model: SqlRegistryModel, repo: RepositoryReference) -> None:
    image = push_image(model, repo, [b"base layer", b"middle", b"leaf layer"])
    layers = model.list_manifest_layers(image.manifest, include_placements=True)
    assert layers is not None
    assert [layer.layer_info.blob_digest for layer in layers] == [
        digest_of(b"base layer"),
        digest_of(b"middle"),
        digest_of(b"leaf layer"),
    ]
    chain = model.lookup_manifest_by_digest(
        repo, image.manifest.digest, allow_dead=True, include_legacy_image=True
    )
    assert chain is not None and chain.legacy_image is not None
    assert layers[-1].layer_info.layer_id == chain.legacy_image.docker_image_id
    assert layers[0].layer_info.layer_id == chain.legacy_image.parents[-1].docker_image_id
    for layer in layers:
        assert layer.blob is not None and layer.blob.placements == ("local",)
        assert layer.layer_info.command is not None and "step" in layer.layer_info.command
        assert layer.estimated_size(1) == layer.layer_info.compressed_size
        found = model.get_repo_blob_by_digest(repo, layer.layer_info.blob_digest)
        assert found == layer.blob


def test_list_manifest_layers_remote_layer_has_no_blob(
    model: SqlRegistryModel, repo: RepositoryReference
) -> None:
    image = push_image(model, repo, [b"local"], remote_layer=True)
    layers = model.list_manifest_layers(image.manifest)
    assert layers is not None and len(layers) == 2
    remote = layers[-1]
    assert remote.blob is None and remote.layer_info.is_remote
    assert remote.layer_info.urls == ("https://example.invalid/layer",)
    assert remote.estimated_size(2) == remote.layer_info.compressed_size * 2  # type: ignore[operator]


def test_list_manifest_layers_is_none_for_lists_and_broken_manifests(
    model: SqlRegistryModel, repo: RepositoryReference
) -> None:
    image = push_image(model, repo, [b"x"])
    index = push_index(model, repo, [(image.manifest, "amd64")])
    assert model.list_manifest_layers(index) is None
    broken = replace(image.manifest, internal_manifest_bytes=b"{")
    assert model.list_manifest_layers(broken) is None
    # A layer the repository cannot see.
    parsed = json.loads(image.manifest.internal_manifest_bytes)
    parsed["layers"][0]["digest"] = digest_of(b"never pushed")
    unknown = replace(image.manifest, internal_manifest_bytes=json.dumps(parsed).encode())
    assert model.list_manifest_layers(unknown) is None


def test_schema1_manifest_layers_come_from_the_v1_history(
    model: SqlRegistryModel, repo: RepositoryReference
) -> None:
    leaf = push_v1_chain(model, repo, ["base", "leaf"])
    tag = model.retarget_tag(repo, "v1", leaf)
    assert tag is not None
    manifest = model.backfill_manifest_for_tag(tag)
    assert manifest is not None
    layers = model.list_manifest_layers(manifest)
    assert layers is not None
    assert [layer.layer_info.layer_id for layer in layers] == [
        leaf.parents[0].docker_image_id,
        leaf.docker_image_id,
    ]
    assert layers[-1].layer_info.command == '["/bin/sh", "-c", "echo leaf"]'
