"""Which manifests ``lookup_manifest_by_digest`` finds without ``allow_dead`` (issue 14):
one an alive tag points at, directly or through any chain of indexes holding it, or whose
subject is reachable (a referrer lives as long as its subject). The children of an index
pushed by digest lose their own temp tags once the index holds them (as Quay's
``reset_child_manifest_expiration``), so they go when the index's last alive tag goes, and
come back with a restore within the time-machine window."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.model.builders import push_artifact, push_image, push_index
from tests.model.conftest import FakeClock

from moorage.domain.records import Manifest, RepositoryReference
from moorage.model.sql import SqlRegistryModel

TEMP_S = 300  # what a push by digest gets (ManifestSettings.temp_tag_expiration_s)


def by_digest(
    model: SqlRegistryModel, repo: RepositoryReference, manifest: Manifest, temp_s: int = TEMP_S
) -> Manifest:
    """What PUT /v2/<repo>/manifests/<digest> does: the manifest with a temp tag."""
    return model.create_manifest(
        repo, manifest.internal_manifest_bytes, manifest.media_type, temp_tag_expiration_s=temp_s
    )


def child(
    model: SqlRegistryModel, repo: RepositoryReference, name: str, temp_s: int = TEMP_S
) -> Manifest:
    return by_digest(
        model, repo, push_image(model, repo, [name.encode()], seed=name).manifest, temp_s
    )


def index_of(
    model: SqlRegistryModel,
    repo: RepositoryReference,
    children: list[Manifest],
    *,
    temp_s: int | None = None,
) -> Manifest:
    index = push_index(model, repo, [(c, f"arch{i}") for i, c in enumerate(children)])
    return index if temp_s is None else by_digest(model, repo, index, temp_s)


def reachable(model: SqlRegistryModel, repo: RepositoryReference, manifest: Manifest) -> bool:
    return model.lookup_manifest_by_digest(repo, manifest.digest) is not None


def restorable(model: SqlRegistryModel, repo: RepositoryReference, manifest: Manifest) -> bool:
    return model.lookup_manifest_by_digest(repo, manifest.digest, allow_dead=True) is not None


def test_a_child_pushed_by_digest_goes_with_its_index_tag(
    model: SqlRegistryModel, repo: RepositoryReference
) -> None:
    amd = child(model, repo, "amd")
    assert reachable(model, repo, amd)  # its temp tag, until an index holds it
    index = index_of(model, repo, [amd])
    model.retarget_tag(repo, "multi", index)
    assert reachable(model, repo, index) and reachable(model, repo, amd)
    model.delete_tag(repo, "multi")
    assert not reachable(model, repo, index)
    assert not reachable(model, repo, amd)  # its temp tag no longer keeps it
    assert restorable(model, repo, index) and restorable(model, repo, amd)


def test_nested_indexes_are_reachable_through_every_level(
    model: SqlRegistryModel, repo: RepositoryReference
) -> None:
    image = child(model, repo, "leaf")
    inner = index_of(model, repo, [image], temp_s=TEMP_S)
    outer = index_of(model, repo, [inner])
    model.retarget_tag(repo, "nested", outer)
    assert all(reachable(model, repo, m) for m in (outer, inner, image))
    model.delete_tag(repo, "nested")
    assert not any(reachable(model, repo, m) for m in (outer, inner, image))
    assert all(restorable(model, repo, m) for m in (outer, inner, image))


def test_nested_without_temp_tags(model: SqlRegistryModel, repo: RepositoryReference) -> None:
    image = push_image(model, repo, [b"deep"], seed="deep").manifest
    middle = push_index(model, repo, [(image, "amd64")])
    top = push_index(model, repo, [(middle, "any")])
    assert not reachable(model, repo, image)
    model.retarget_tag(repo, "top", top)
    assert reachable(model, repo, image) and reachable(model, repo, middle)
    model.delete_tag(repo, "top")
    assert not reachable(model, repo, image) and not reachable(model, repo, middle)


def test_a_shared_child_stays_while_another_index_is_tagged(
    model: SqlRegistryModel, repo: RepositoryReference
) -> None:
    shared = child(model, repo, "shared")
    own = child(model, repo, "own")
    first = index_of(model, repo, [shared, own])
    second = index_of(model, repo, [shared])
    model.retarget_tag(repo, "first", first)
    model.retarget_tag(repo, "second", second)
    model.delete_tag(repo, "first")
    assert not reachable(model, repo, first) and not reachable(model, repo, own)
    assert reachable(model, repo, shared) and reachable(model, repo, second)
    model.delete_tag(repo, "second")
    assert not reachable(model, repo, shared)


def test_a_child_tagged_itself_stays(model: SqlRegistryModel, repo: RepositoryReference) -> None:
    amd = child(model, repo, "amd")
    index = index_of(model, repo, [amd])
    model.retarget_tag(repo, "multi", index)
    model.retarget_tag(repo, "amd-only", amd)
    model.delete_tag(repo, "multi")
    assert reachable(model, repo, amd) and not reachable(model, repo, index)
    model.delete_tag(repo, "amd-only")
    assert not reachable(model, repo, amd)


def test_a_moved_index_tag_takes_the_children_with_it(
    model: SqlRegistryModel, repo: RepositoryReference
) -> None:
    old = child(model, repo, "old")
    index = index_of(model, repo, [old])
    model.retarget_tag(repo, "multi", index)
    other = push_image(model, repo, [b"other"], seed="other").manifest
    model.retarget_tag(repo, "multi", other)
    assert not reachable(model, repo, index) and not reachable(model, repo, old)
    assert reachable(model, repo, other)


def test_an_expired_index_tag_takes_the_children_with_it(
    model: SqlRegistryModel, repo: RepositoryReference, clock: FakeClock
) -> None:
    # A temp tag that outlives the index tag's expiry (the shortest expiry is an hour).
    amd = child(model, repo, "amd", temp_s=3 * 3600)
    index = index_of(model, repo, [amd])
    tag = model.retarget_tag(repo, "multi", index)
    assert tag is not None
    start = datetime.fromtimestamp(tag.lifetime_start_ts, UTC)
    _, ok = model.change_repository_tag_expiration(tag, start)
    assert ok  # clamped to an hour after its start
    clock.advance(3601)
    assert model.get_repo_tag(repo, "multi") is None
    assert not reachable(model, repo, index) and not reachable(model, repo, amd)
    assert restorable(model, repo, amd)


def test_an_index_deleted_by_digest_takes_the_children_with_it(
    model: SqlRegistryModel, repo: RepositoryReference
) -> None:
    amd = child(model, repo, "amd")
    index = index_of(model, repo, [amd])
    model.retarget_tag(repo, "multi", index)
    assert model.delete_manifest(repo, index)
    assert not reachable(model, repo, index) and not reachable(model, repo, amd)
    assert restorable(model, repo, amd)


def test_restoring_the_index_tag_brings_the_children_back(
    model: SqlRegistryModel, repo: RepositoryReference, clock: FakeClock
) -> None:
    image = child(model, repo, "leaf")
    inner = index_of(model, repo, [image], temp_s=TEMP_S)
    outer = index_of(model, repo, [inner])
    model.retarget_tag(repo, "multi", outer)
    model.delete_tag(repo, "multi")
    clock.advance(TEMP_S + 1)
    dead = model.lookup_manifest_by_digest(repo, outer.digest, allow_dead=True)
    assert dead is not None
    assert model.retarget_tag(repo, "multi", dead, is_reversion=True) is not None
    assert all(reachable(model, repo, m) for m in (outer, inner, image))


def test_a_child_pushed_again_after_its_index_keeps_no_temp_tag(
    model: SqlRegistryModel, repo: RepositoryReference
) -> None:
    """The index pushed again (a retried push) ends the temp tags its children got since."""
    amd = child(model, repo, "amd")
    index = index_of(model, repo, [amd])
    model.retarget_tag(repo, "multi", index)
    by_digest(model, repo, amd)  # a client pushing the child again
    index_of(model, repo, [amd])
    model.delete_tag(repo, "multi")
    assert not reachable(model, repo, amd)


def test_an_untagged_index_pushed_by_digest_keeps_its_children_for_its_temp_tag(
    model: SqlRegistryModel, repo: RepositoryReference, clock: FakeClock
) -> None:
    amd = child(model, repo, "amd")
    index = index_of(model, repo, [amd], temp_s=TEMP_S)
    assert reachable(model, repo, index) and reachable(model, repo, amd)
    clock.advance(TEMP_S + 1)
    assert not reachable(model, repo, index) and not reachable(model, repo, amd)


def test_a_referrer_lives_as_long_as_its_subject(
    model: SqlRegistryModel, repo: RepositoryReference, clock: FakeClock
) -> None:
    subject = push_image(model, repo, [b"subject"], seed="subject").manifest
    model.retarget_tag(repo, "app", subject)
    sbom = by_digest(model, repo, push_artifact(model, repo, subject))
    signature = by_digest(model, repo, push_artifact(model, repo, sbom))  # refers to the sbom
    clock.advance(TEMP_S + 1)  # their temp tags are over
    assert reachable(model, repo, sbom) and reachable(model, repo, signature)
    assert [m.digest for m in model.list_referrers(repo, subject.digest)] == [sbom.digest]
    model.delete_tag(repo, "app")
    assert not reachable(model, repo, sbom) and not reachable(model, repo, signature)
    assert restorable(model, repo, sbom)


def test_a_referrer_of_a_child_lives_as_long_as_the_index(
    model: SqlRegistryModel, repo: RepositoryReference, clock: FakeClock
) -> None:
    amd = child(model, repo, "amd")
    index = index_of(model, repo, [amd])
    model.retarget_tag(repo, "multi", index)
    signature = by_digest(model, repo, push_artifact(model, repo, amd))
    clock.advance(TEMP_S + 1)
    assert reachable(model, repo, signature)
    model.delete_tag(repo, "multi")
    assert not reachable(model, repo, signature)


def test_a_deleted_index_does_not_keep_its_children(
    model: SqlRegistryModel, repo: RepositoryReference
) -> None:
    """A tagged outer index holding an inner one deleted by digest: the inner one and its
    child are gone (a deleted manifest keeps nothing reachable)."""
    image = child(model, repo, "leaf")
    inner = index_of(model, repo, [image], temp_s=TEMP_S)
    outer = index_of(model, repo, [inner])
    model.retarget_tag(repo, "multi", outer)
    assert model.delete_manifest(repo, inner)
    assert reachable(model, repo, outer)
    assert not reachable(model, repo, inner) and not reachable(model, repo, image)


def test_a_chain_of_referrers_of_an_untagged_subject_is_not_found(
    model: SqlRegistryModel, repo: RepositoryReference, clock: FakeClock
) -> None:
    subject = push_image(model, repo, [b"alone"], seed="alone").manifest
    first = by_digest(model, repo, push_artifact(model, repo, subject))
    second = by_digest(model, repo, push_artifact(model, repo, first))
    clock.advance(TEMP_S + 1)
    assert not reachable(model, repo, second)
