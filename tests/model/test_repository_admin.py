"""What the REST API reads and changes on repositories, on both databases: summaries (alive
tags, size of distinct manifests, last change), one page described at once, and deletion
(tags end, the name is free, listings no longer show it)."""

from __future__ import annotations

from tests.model.builders import push_image
from tests.model.conftest import FakeClock

from moorage.domain.records import RepositoryReference, RepositoryState
from moorage.model.sql import SqlRegistryModel


def test_a_summary_counts_alive_tags_and_distinct_manifests(
    model: SqlRegistryModel, repo: RepositoryReference, clock: FakeClock
) -> None:
    empty = model.repository_summary(repo)
    assert (empty.tag_count, empty.size_bytes, empty.last_modified_ms) == (0, 0, None)
    first = push_image(model, repo, [b"a" * 100], seed="1")
    second = push_image(model, repo, [b"b" * 50], seed="2")
    model.retarget_tag(repo, "one", first.manifest)
    model.retarget_tag(repo, "also-one", first.manifest)  # the same manifest counts once
    clock.advance(5)
    model.retarget_tag(repo, "two", second.manifest)
    summary = model.repository_summary(repo)
    assert summary.tag_count == 3
    assert summary.size_bytes == (first.manifest.layers_compressed_size or 0) + (
        second.manifest.layers_compressed_size or 0
    )
    assert summary.last_modified_ms == clock()
    clock.advance(5)
    model.delete_tag(repo, "two")
    after = model.repository_summary(repo)
    assert after.tag_count == 2 and after.last_modified_ms == clock()


def test_a_page_is_described_in_the_order_asked_and_missing_names_skipped(
    model: SqlRegistryModel, repo: RepositoryReference, other_repo: RepositoryReference
) -> None:
    image = push_image(model, other_repo, [b"x"], seed="x")
    model.retarget_tag(other_repo, "latest", image.manifest)
    described = model.describe_repositories(
        ["devtable/other", "devtable/nothing", "devtable/simple"]
    )
    assert [(r.full_name, s.tag_count) for r, s in described] == [
        ("devtable/other", 1),
        ("devtable/simple", 0),
    ]
    assert model.describe_repositories([]) == []


def test_a_deleted_repository_frees_its_name_and_leaves_the_listings(
    model: SqlRegistryModel, repo: RepositoryReference, clock: FakeClock
) -> None:
    image = push_image(model, repo, [b"gone"], seed="g")
    model.retarget_tag(repo, "latest", image.manifest)
    assert model.mark_repository_deleted(repo)
    assert not model.mark_repository_deleted(repo)  # once
    assert model.lookup_repository("devtable", "simple") is None
    assert "devtable/simple" not in model.list_repository_names()
    assert model.get_repo_tag(repo, "latest") is None  # its tags ended
    assert model.lookup_manifest_by_digest(repo, image.manifest.digest) is None
    fresh = model.create_repository("devtable", "simple")
    assert fresh is not None and fresh.id != repo.id
    assert fresh.state is RepositoryState.NORMAL
    assert model.repository_summary(fresh).tag_count == 0
