"""backfill_manifest_for_tag: a signed schema 1 manifest for tags with only a V1 chain."""

from __future__ import annotations

from tests.model.builders import push_image, push_v1_chain
from tests.model.conftest import FakeClock

from moorage.db.engine import Database
from moorage.domain.manifests import parse_manifest
from moorage.domain.media_types import DOCKER_SCHEMA1_SIGNED_MANIFEST
from moorage.domain.records import RepositoryReference
from moorage.model.sql import SqlRegistryModel


def test_backfill_builds_a_verifiable_schema1_manifest(
    model: SqlRegistryModel, repo: RepositoryReference
) -> None:
    leaf = push_v1_chain(model, repo, ["root", "middle", "leaf"])
    tag = model.retarget_tag(repo, "v1", leaf)
    assert tag is not None
    manifest = model.backfill_manifest_for_tag(tag)
    assert manifest is not None
    assert manifest.media_type == DOCKER_SCHEMA1_SIGNED_MANIFEST
    parsed = parse_manifest(manifest.internal_manifest_bytes, manifest.media_type)
    assert parsed.schema1 is not None and parsed.schema1.signed
    assert parsed.schema1.name == "devtable/simple" and parsed.schema1.tag == "v1"
    assert parsed.schema1.entries[-1].id == leaf.docker_image_id
    assert {e.id for e in parsed.schema1.entries[:-1]} == {p.docker_image_id for p in leaf.parents}
    assert parsed.digest == manifest.digest
    # It is stored, linked to the tag, and pullable by digest.
    assert model.lookup_manifest_by_digest(repo, manifest.digest) == manifest
    assert model.get_security_status(manifest) is not None


def test_backfill_is_idempotent_and_keeps_existing_manifests(
    model: SqlRegistryModel, repo: RepositoryReference
) -> None:
    leaf = push_v1_chain(model, repo, ["only"])
    tag = model.retarget_tag(repo, "v1", leaf)
    assert tag is not None
    first = model.backfill_manifest_for_tag(tag)
    assert first is not None and model.backfill_manifest_for_tag(tag) == first
    image = push_image(model, repo, [b"modern"])
    modern = model.retarget_tag(repo, "modern", image.manifest)
    assert modern is not None
    assert model.backfill_manifest_for_tag(modern) == image.manifest


def test_backfill_every_history_version(
    model: SqlRegistryModel, repo: RepositoryReference, clock: FakeClock
) -> None:
    first = push_v1_chain(model, repo, ["one"], prefix="a")
    second = push_v1_chain(model, repo, ["two"], prefix="b")
    model.retarget_tag(repo, "v1", first)
    clock.advance(1)
    model.retarget_tag(repo, "v1", second)
    history, _ = model.list_repository_tag_history(repo)
    for version in history:
        assert version.manifest_digest is None
        assert model.backfill_manifest_for_tag(version) is not None
    history, _ = model.list_repository_tag_history(repo)
    assert all(version.manifest_digest for version in history)


def test_backfill_without_a_legacy_image_or_for_a_missing_tag(
    model: SqlRegistryModel, repo: RepositoryReference
) -> None:
    leaf = push_v1_chain(model, repo, ["x"])
    tag = model.retarget_tag(repo, "v1", leaf)
    assert tag is not None
    from dataclasses import replace

    assert model.backfill_manifest_for_tag(replace(tag, id=tag.id + 999)) is None


def test_every_worker_signs_with_the_same_stored_key(
    model: SqlRegistryModel, repo: RepositoryReference
) -> None:
    another_worker = SqlRegistryModel(Database(model.database.engine), locations=("local",))
    assert another_worker.schema1_signer().key_id == model.schema1_signer().key_id
