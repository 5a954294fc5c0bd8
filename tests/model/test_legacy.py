"""Legacy V1 images: listing, lookup, ownership by tags and security status."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from typing import Any

import pytest
from tests.model.builders import (
    digest_of,
    push_artifact,
    push_blob,
    push_image,
    push_index,
    push_v1_chain,
)

from moorage.domain.errors import ExtraNotLoadedError
from moorage.domain.manifests import V1Entry
from moorage.domain.records import RepositoryReference, SecurityScanStatus
from moorage.model.sql import SqlRegistryModel


def test_get_legacy_images_with_parents_and_tags(
    model: SqlRegistryModel, repo: RepositoryReference
) -> None:
    leaf = push_v1_chain(model, repo, ["base", "mid", "leaf"])
    model.retarget_tag(repo, "latest", leaf)
    model.retarget_tag(repo, "also", leaf)
    images = model.get_legacy_images(repo)
    assert images is not None and len(images) == 3
    by_id = {image.docker_image_id: image for image in images}
    top = by_id[leaf.docker_image_id]
    assert sorted(tag.name for tag in top.tags) == ["also", "latest"]
    assert [p.docker_image_id for p in top.parents] == [p.docker_image_id for p in leaf.parents]
    base = by_id[leaf.parents[-1].docker_image_id]
    assert base.parents == () and base.tags == ()


def test_get_legacy_images_of_a_missing_repository(
    model: SqlRegistryModel, repo: RepositoryReference
) -> None:
    assert model.get_legacy_images(replace(repo, id=repo.id + 999)) is None
    assert model.get_legacy_images(repo) == []


def test_get_legacy_image(model: SqlRegistryModel, repo: RepositoryReference) -> None:
    leaf = push_v1_chain(model, repo, ["base", "mid", "leaf"])
    image = model.get_legacy_image(
        repo, leaf.docker_image_id, include_parents=True, include_blob=True
    )
    assert image == leaf
    assert image is not None
    assert [p.docker_image_id for p in image.parents] == [
        leaf.parents[0].docker_image_id,
        leaf.parents[1].docker_image_id,
    ]
    assert image.blob.placements == ("local",)
    assert image.blob.digest == image.blob_digest
    assert image.aggregate_size == sum(i.image_size or 0 for i in (image, *image.parents))
    assert image.command == '["/bin/sh", "-c", "echo leaf"]'
    assert model.get_legacy_image(repo, "unknown") is None
    bare = model.get_legacy_image(repo, leaf.docker_image_id)
    assert bare is not None
    with pytest.raises(ExtraNotLoadedError):
        _ = bare.parents
    with pytest.raises(ExtraNotLoadedError):
        _ = bare.blob


def test_legacy_images_are_per_repository(
    model: SqlRegistryModel, repo: RepositoryReference, other_repo: RepositoryReference
) -> None:
    leaf = push_v1_chain(model, repo, ["only"])
    assert model.get_legacy_image(other_repo, leaf.docker_image_id) is None


def test_schema2_pushes_derive_a_v1_chain(
    model: SqlRegistryModel, repo: RepositoryReference
) -> None:
    first = push_image(model, repo, [b"a", b"b"], seed="same")
    again = model.create_manifest(
        repo, first.manifest.internal_manifest_bytes, first.manifest.media_type
    )
    assert again == first.manifest
    images = model.get_legacy_images(repo)
    assert images is not None and len(images) == 2  # same content, same V1 ids, no copies


def test_conflicting_v1_ids_are_rewritten(
    model: SqlRegistryModel, repo: RepositoryReference
) -> None:
    original = push_v1_chain(model, repo, ["same-name"], prefix="p")
    from tests.model.builders import digest_of, push_blob

    from moorage.domain.manifests import V1Entry

    other = b"different bytes under a reused id"
    push_blob(model, repo, other)
    clash = V1Entry(
        id=original.docker_image_id,
        parent=None,
        blob_digest=digest_of(other),
        v1_json=f'{{"id": "{original.docker_image_id}"}}',
        created=None,
        comment=None,
        command=None,
        author=None,
        throwaway=False,
        size=len(other),
    )
    stored = model.create_legacy_images(repo, [clash])
    assert stored.docker_image_id != original.docker_image_id
    assert stored.blob_digest == digest_of(other)
    assert model.get_legacy_image(repo, original.docker_image_id) == original


def test_images_owned_by_tag(model: SqlRegistryModel, repo: RepositoryReference) -> None:
    shared = push_v1_chain(model, repo, ["base"], prefix="s")
    from tests.model.builders import digest_of, push_blob

    from moorage.domain.manifests import V1Entry

    def child(name: str) -> V1Entry:
        data = f"child {name}".encode()
        push_blob(model, repo, data)
        image_id = digest_of(data)[7:]
        return V1Entry(
            id=image_id,
            parent=shared.docker_image_id,
            blob_digest=digest_of(data),
            v1_json=f'{{"id": "{image_id}", "parent": "{shared.docker_image_id}"}}',
            created=None,
            comment=None,
            command=None,
            author=None,
            throwaway=False,
            size=len(data),
        )

    base_entry = V1Entry(
        id=shared.docker_image_id,
        parent=None,
        blob_digest=shared.blob_digest or "",
        v1_json=shared.v1_metadata_string or "",
        created=None,
        comment=None,
        command=None,
        author=None,
        throwaway=False,
        size=None,
    )
    prod = model.create_legacy_images(repo, [base_entry, child("prod")])
    dev = model.create_legacy_images(repo, [base_entry, child("dev")])
    prod_tag = model.retarget_tag(repo, "prod", prod)
    model.retarget_tag(repo, "dev", dev)
    base_tag = model.retarget_tag(repo, "base", shared)
    assert prod_tag is not None and base_tag is not None
    owned = model.get_legacy_images_owned_by_tag(prod_tag)
    assert owned is not None and [i.docker_image_id for i in owned] == [prod.docker_image_id]
    assert owned[0].parents[0].docker_image_id == shared.docker_image_id
    assert model.get_legacy_images_owned_by_tag(base_tag) == []
    # Once the other tags are gone, the base belongs to prod alone.
    model.delete_tag(repo, "dev")
    model.delete_tag(repo, "base")
    owned = model.get_legacy_images_owned_by_tag(prod_tag)
    assert owned is not None
    assert {i.docker_image_id for i in owned} == {prod.docker_image_id, shared.docker_image_id}


def test_images_owned_by_a_tag_without_images(
    model: SqlRegistryModel, repo: RepositoryReference
) -> None:
    image = push_image(model, repo, [b"x"])
    index = push_index(model, repo, [(image.manifest, "amd64")])
    tag = model.retarget_tag(repo, "multi", index)
    assert tag is not None
    assert model.get_legacy_images_owned_by_tag(tag) is None
    assert model.get_legacy_images_owned_by_tag(replace(tag, id=tag.id + 99)) is None


def test_security_status(model: SqlRegistryModel, repo: RepositoryReference) -> None:
    image = push_image(model, repo, [b"scan me"])
    found = model.lookup_manifest_by_digest(
        repo, image.manifest.digest, allow_dead=True, include_legacy_image=True
    )
    assert found is not None and found.legacy_image is not None
    legacy = found.legacy_image
    assert model.get_security_status(image.manifest) is SecurityScanStatus.QUEUED
    model.set_security_status(legacy, True, 3)
    assert model.get_security_status(image.manifest) is SecurityScanStatus.SCANNED
    assert model.get_security_status(legacy) is SecurityScanStatus.SCANNED
    model.set_security_status(legacy, False, 3)
    assert model.get_security_status(legacy) is SecurityScanStatus.FAILED
    model.set_security_status(legacy, False, -1)
    assert model.get_security_status(legacy) is SecurityScanStatus.QUEUED


def test_security_status_unsupported_and_missing(
    model: SqlRegistryModel, repo: RepositoryReference
) -> None:
    image = push_image(model, repo, [b"x"])
    index = push_index(model, repo, [(image.manifest, "amd64")])
    artifact = push_artifact(model, repo, image.manifest)
    assert model.get_security_status(index) is SecurityScanStatus.UNSUPPORTED
    assert model.get_security_status(artifact) is SecurityScanStatus.UNSUPPORTED
    assert model.get_security_status(replace(image.manifest, id=image.manifest.id + 99)) is None
    leaf = push_v1_chain(model, repo, ["v1"])
    assert model.get_security_status(replace(leaf, id=leaf.id + 99)) is None


def _v1_entry(repo_blob: bytes, image_id: str, parent: str | None) -> V1Entry:
    v1: dict[str, Any] = {"id": image_id, "created": "2026-02-01T00:00:00Z"}
    if parent:
        v1["parent"] = parent
    return V1Entry(
        id=image_id,
        parent=parent,
        blob_digest=digest_of(repo_blob),
        v1_json=json.dumps(v1),
        created=None,
        comment=None,
        command=None,
        author=None,
        throwaway=False,
        size=len(repo_blob),
    )


def _running_ids(chain: list[V1Entry]) -> list[str]:
    running = hashlib.sha256()
    out = []
    for entry in chain:
        running.update(f"{entry.blob_digest}@{entry.v1_json}|".encode())
        out.append(running.hexdigest())
    return out


def test_chains_reuse_their_prefix_and_rewrite_from_the_first_conflict(
    model: SqlRegistryModel, repo: RepositoryReference
) -> None:
    data = {name: f"layer {name}".encode() + b"x" * i for i, name in enumerate("abcdxy")}
    for content in data.values():
        push_blob(model, repo, content)
    ids = {name: hashlib.sha256(name.encode()).hexdigest() for name in "abcd"}
    a = _v1_entry(data["a"], ids["a"], None)
    b = _v1_entry(data["b"], ids["b"], ids["a"])

    first = model.create_legacy_images(repo, [a, b, _v1_entry(data["c"], ids["c"], ids["b"])])
    assert [p.docker_image_id for p in first.parents] == [ids["b"], ids["a"]]
    assert first.aggregate_size == sum(len(data[n]) for n in "abc")

    # A shared prefix is reused, not copied.
    second = model.create_legacy_images(repo, [a, b, _v1_entry(data["d"], ids["d"], ids["b"])])
    assert second.parents == first.parents
    assert second.aggregate_size == sum(len(data[n]) for n in "abd")

    # b's id with other bytes: rewritten from there on, the base still reused.
    chain = [a, _v1_entry(data["x"], ids["b"], ids["a"]), _v1_entry(data["y"], ids["c"], ids["b"])]
    running = _running_ids(chain)
    third = model.create_legacy_images(repo, chain)
    assert third.docker_image_id == running[2]
    assert [p.docker_image_id for p in third.parents] == [running[1], ids["a"]]
    assert third.parents[1] == first.parents[1]
    assert third.aggregate_size == sum(len(data[n]) for n in "axy")
    assert third.parents[0].aggregate_size == sum(len(data[n]) for n in "ax")
    leaf_json = json.loads(third.v1_metadata_string or "")
    assert (leaf_json["id"], leaf_json["parent"]) == (running[2], running[1])
    middle_json = json.loads(third.parents[0].v1_metadata_string or "")
    assert (middle_json["id"], middle_json["parent"]) == (running[1], ids["a"])

    # One id twice in a chain: the second use conflicts with the first.
    twice = [_v1_entry(data["d"], ids["d"] + "0", None), _v1_entry(data["y"], ids["d"] + "0", None)]
    fourth = model.create_legacy_images(repo, twice)
    assert fourth.docker_image_id == _running_ids(twice)[1]
    assert [p.docker_image_id for p in fourth.parents] == [ids["d"] + "0"]
    images = model.get_legacy_images(repo)
    assert images is not None and len(images) == 4 + 2 + 2
