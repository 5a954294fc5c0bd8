"""Tags: lookups, history, retargeting, deletion and expiration."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from tests.model.builders import push_image, push_v1_chain
from tests.model.conftest import FakeClock

from moorage.domain.errors import DataModelError, ExtraNotLoadedError
from moorage.domain.records import RepositoryReference
from moorage.model.sql import SqlRegistryModel


def _tagged(
    model: SqlRegistryModel, repo: RepositoryReference, clock: FakeClock, *names: str
) -> list:
    tags = []
    for index, name in enumerate(names):
        image = push_image(model, repo, [f"{name} layer".encode()], seed=name)
        tag = model.retarget_tag(repo, name, image.manifest)
        assert tag is not None
        tags.append(tag)
        clock.advance(1 + index)
    return tags


def test_find_matching_tag(
    model: SqlRegistryModel, repo: RepositoryReference, clock: FakeClock
) -> None:
    _tagged(model, repo, clock, "latest", "prod")
    assert model.find_matching_tag(repo, ["unknown"]) is None
    latest = model.find_matching_tag(repo, ["latest"])
    assert latest is not None and latest.name == "latest"
    assert latest.repository.full_name == "devtable/simple"
    # Among several matches the one started most recently wins.
    both = model.find_matching_tag(repo, ["latest", "prod", "another"])
    assert both is not None and both.name == "prod"
    found = model.find_matching_tag(repo, ["foo", "prod"])
    assert found is not None and found.name == "prod"
    with pytest.raises(ValueError):
        model.find_matching_tag(repo, [])


def test_find_matching_tag_ignores_dead_and_hidden(
    model: SqlRegistryModel, repo: RepositoryReference, clock: FakeClock
) -> None:
    _tagged(model, repo, clock, "latest", "prod")
    model.delete_tag(repo, "prod")
    found = model.find_matching_tag(repo, ["prod", "latest"])
    assert found is not None and found.name == "latest"
    image = push_image(model, repo, [b"hidden"], seed="h")
    model.create_manifest(
        repo,
        image.manifest.internal_manifest_bytes,
        image.manifest.media_type,
        temp_tag_expiration_s=300,
    )
    assert all(not t.name.startswith("$temp") for t in model.list_repository_tags(repo))


def test_get_most_recent_tag(
    model: SqlRegistryModel, repo: RepositoryReference, clock: FakeClock
) -> None:
    assert model.get_most_recent_tag(repo) is None
    _tagged(model, repo, clock, "latest", "prod")
    recent = model.get_most_recent_tag(repo)
    assert recent is not None and recent.name == "prod"
    model.delete_tag(repo, "prod")
    recent = model.get_most_recent_tag(repo)
    assert recent is not None and recent.name == "latest"


def test_get_repo_tag(model: SqlRegistryModel, repo: RepositoryReference, clock: FakeClock) -> None:
    (latest,) = _tagged(model, repo, clock, "latest")
    found = model.get_repo_tag(repo, "latest")
    assert found == latest
    assert found is not None and found.manifest_digest == latest.manifest_digest
    assert model.get_repo_tag(repo, "missing") is None
    with pytest.raises(ExtraNotLoadedError):
        _ = found.legacy_image
    with_image = model.get_repo_tag(repo, "latest", include_legacy_image=True)
    assert with_image is not None and with_image.legacy_image is not None
    assert with_image.legacy_image.parents == ()


def test_expired_tag_is_not_alive(
    model: SqlRegistryModel, repo: RepositoryReference, clock: FakeClock
) -> None:
    (latest,) = _tagged(model, repo, clock, "latest")
    model.change_repository_tag_expiration(
        latest, datetime.fromtimestamp(latest.lifetime_start_ts + 7200, UTC)
    )
    clock.advance(7200 - 1)  # the tag was created 1 s ago; end == now counts as dead
    assert model.get_repo_tag(repo, "latest") is None
    assert model.has_expired_tag(repo, "latest") is True
    assert model.has_expired_tag(repo, "never") is False


def test_list_repository_tags(
    model: SqlRegistryModel, repo: RepositoryReference, clock: FakeClock
) -> None:
    _tagged(model, repo, clock, "latest", "prod", "old")
    model.delete_tag(repo, "old")
    tags = model.list_repository_tags(repo, include_legacy_images=True)
    assert [t.name for t in tags] == ["latest", "prod"]
    for tag in tags:
        assert tag == model.get_repo_tag(repo, tag.name)
        assert tag.legacy_image is not None
        assert tag.legacy_image.docker_image_id
    assert model.list_repository_tags(repo)[0].manifest_digest is not None


def test_tag_history_is_append_only(
    model: SqlRegistryModel, repo: RepositoryReference, clock: FakeClock
) -> None:
    first = push_image(model, repo, [b"one"], seed="1")
    second = push_image(model, repo, [b"two"], seed="2")
    model.retarget_tag(repo, "latest", first.manifest)
    clock.advance(10)
    moved = model.retarget_tag(repo, "latest", second.manifest)
    assert moved is not None and moved.manifest_digest == second.manifest.digest
    history, has_more = model.list_repository_tag_history(repo)
    assert has_more is False
    assert [(t.name, t.manifest_digest) for t in history] == [
        ("latest", second.manifest.digest),
        ("latest", first.manifest.digest),
    ]
    newest, oldest = history
    assert newest.lifetime_end_ts is None
    assert oldest.lifetime_end_ms == newest.lifetime_start_ms  # closed exactly at the move
    assert newest.legacy_image is not None  # history carries legacy images


def test_tag_history_paging_filters_and_order(
    model: SqlRegistryModel, repo: RepositoryReference, clock: FakeClock
) -> None:
    image = push_image(model, repo, [b"layer"])
    for name in ("b", "a", "c"):
        model.retarget_tag(repo, name, image.manifest)  # same start: ordered by name
    clock.advance(5)
    model.retarget_tag(repo, "a", image.manifest)
    model.delete_tag(repo, "c")
    page1, more1 = model.list_repository_tag_history(repo, page=1, size=2)
    page2, more2 = model.list_repository_tag_history(repo, page=2, size=2)
    page3, more3 = model.list_repository_tag_history(repo, page=3, size=2)
    assert [t.name for t in page1 + page2] == ["a", "a", "b", "c"]
    assert (more1, more2, more3, page3) == (True, False, False, [])
    only_a, _ = model.list_repository_tag_history(repo, specific_tag_name="a")
    assert len(only_a) == 2
    assert model.list_repository_tag_history(repo, specific_tag_name="foobar") == ([], False)
    active, _ = model.list_repository_tag_history(repo, active_tags_only=True)
    assert sorted(t.name for t in active) == ["a", "b"]


def test_tag_history_hides_versions_past_the_time_machine_window(
    model: SqlRegistryModel, clock: FakeClock
) -> None:
    model.create_namespace("brief", removed_tag_expiration_s=60)
    repo = model.create_repository("brief", "repo")
    assert repo is not None
    image = push_image(model, repo, [b"x"])
    model.retarget_tag(repo, "gone", image.manifest)
    model.delete_tag(repo, "gone")
    assert len(model.list_repository_tag_history(repo)[0]) == 1
    clock.advance(61)
    assert model.list_repository_tag_history(repo) == ([], False)
    assert model.has_expired_tag(repo, "gone") is False


def test_retarget_creates_and_moves(
    model: SqlRegistryModel, repo: RepositoryReference, clock: FakeClock
) -> None:
    first = push_image(model, repo, [b"one"], seed="1")
    created = model.retarget_tag(repo, "new", first.manifest)
    assert created is not None
    assert (created.name, created.reversion, created.lifetime_end_ms) == ("new", False, None)
    assert created.legacy_image is not None
    assert created.legacy_image_id == created.legacy_image.id


def test_retarget_refuses_targets_of_other_repositories(
    model: SqlRegistryModel, repo: RepositoryReference, other_repo: RepositoryReference
) -> None:
    foreign = push_image(model, other_repo, [b"elsewhere"])
    assert model.retarget_tag(repo, "latest", foreign.manifest) is None
    assert model.get_repo_tag(repo, "latest") is None


def test_revert_to_a_previous_manifest(
    model: SqlRegistryModel, repo: RepositoryReference, clock: FakeClock
) -> None:
    old = push_image(model, repo, [b"old"], seed="o")
    new = push_image(model, repo, [b"new"], seed="n")
    model.retarget_tag(repo, "latest", old.manifest)
    clock.advance(1)
    model.retarget_tag(repo, "latest", new.manifest)
    clock.advance(1)
    restorable = model.lookup_manifest_by_digest(repo, old.manifest.digest, allow_dead=True)
    assert restorable is not None
    reverted = model.retarget_tag(repo, "latest", restorable, is_reversion=True)
    assert reverted is not None and reverted.reversion is True
    assert reverted.manifest_digest == old.manifest.digest
    assert len(model.list_repository_tag_history(repo)[0]) == 3
    # A manifest never under this name cannot be "restored" to it.
    stranger = push_image(model, repo, [b"stranger"], seed="s")
    assert model.retarget_tag(repo, "latest", stranger.manifest, is_reversion=True) is None


def test_revert_to_a_legacy_image(
    model: SqlRegistryModel, repo: RepositoryReference, clock: FakeClock
) -> None:
    leaf = push_v1_chain(model, repo, ["base", "leaf"])
    tag = model.retarget_tag(repo, "v1", leaf)
    assert tag is not None and tag.manifest_digest is None and tag.legacy_image == leaf
    clock.advance(1)
    other = push_v1_chain(model, repo, ["other"], prefix="x")
    model.retarget_tag(repo, "v1", other)
    clock.advance(1)
    reverted = model.retarget_tag(repo, "v1", leaf, is_reversion=True)
    assert reverted is not None and reverted.legacy_image_id == leaf.id


def test_moving_a_tag_drops_its_expiration(
    model: SqlRegistryModel, repo: RepositoryReference, clock: FakeClock
) -> None:
    image = push_image(model, repo, [b"x"])
    tag = model.retarget_tag(repo, "latest", image.manifest)
    assert tag is not None
    model.change_repository_tag_expiration(tag, datetime.now(UTC) + timedelta(days=2))
    clock.advance(1)
    moved = model.retarget_tag(repo, "latest", image.manifest)
    assert moved is not None and moved.lifetime_end_ms is None


def test_delete_tag_keeps_history(
    model: SqlRegistryModel, repo: RepositoryReference, clock: FakeClock
) -> None:
    _tagged(model, repo, clock, "latest", "prod")
    before = len(model.list_repository_tag_history(repo)[0])
    deleted = model.delete_tag(repo, "latest")
    assert deleted.name == "latest" and deleted.lifetime_end_ms == clock.now
    assert model.get_repo_tag(repo, "latest") is None
    model.delete_tag(repo, "prod")
    assert model.list_repository_tags(repo) == []
    assert len(model.list_repository_tag_history(repo)[0]) == before
    with pytest.raises(DataModelError):
        model.delete_tag(repo, "latest")
    with pytest.raises(DataModelError):
        model.delete_tag(repo, "never-existed")


def test_create_then_delete_in_the_same_millisecond(
    model: SqlRegistryModel, repo: RepositoryReference
) -> None:
    image = push_image(model, repo, [b"x"])
    for _ in range(3):
        assert model.retarget_tag(repo, "fast", image.manifest) is not None
        model.delete_tag(repo, "fast")
    history, _ = model.list_repository_tag_history(repo, specific_tag_name="fast")
    assert len(history) == 3 and model.get_repo_tag(repo, "fast") is None


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        (timedelta(seconds=1), 3600),
        (timedelta(minutes=30), 3600),
        (timedelta(hours=2), 7200),
        (timedelta(weeks=2), 14 * 86400),
        (timedelta(weeks=200), 104 * 7 * 86400),
        (timedelta(weeks=300), 104 * 7 * 86400),
    ],
)
def test_change_expiration_clamps_relative_to_the_tag_start(
    model: SqlRegistryModel,
    repo: RepositoryReference,
    clock: FakeClock,
    offset: timedelta,
    expected: int,
) -> None:
    image = push_image(model, repo, [b"x"])
    tag = model.retarget_tag(repo, "latest", image.manifest)
    assert tag is not None
    start = datetime.fromtimestamp(tag.lifetime_start_ts, UTC)
    assert model.change_repository_tag_expiration(tag, start + offset) == (None, True)
    updated = model.get_repo_tag(repo, "latest")
    assert updated is not None and updated.lifetime_end_ts == tag.lifetime_start_ts + expected


def test_change_expiration_returns_previous_end_in_seconds(
    model: SqlRegistryModel, repo: RepositoryReference
) -> None:
    image = push_image(model, repo, [b"x"])
    tag = model.retarget_tag(repo, "latest", image.manifest)
    assert tag is not None
    naive_end = datetime.fromtimestamp(tag.lifetime_start_ts + 86400, UTC).replace(tzinfo=None)
    assert model.change_repository_tag_expiration(tag, naive_end) == (None, True)
    tag = model.get_repo_tag(repo, "latest")
    assert tag is not None and tag.lifetime_end_ts == tag.lifetime_start_ts + 86400
    # The same end again writes nothing.
    assert model.change_repository_tag_expiration(tag, naive_end) == (None, True)
    previous, ok = model.change_repository_tag_expiration(tag, None)
    assert ok and previous == tag.lifetime_start_ts + 86400
    cleared = model.get_repo_tag(repo, "latest")
    assert cleared is not None and cleared.lifetime_end_ms is None


def test_change_expiration_is_compare_and_set(
    model: SqlRegistryModel, repo: RepositoryReference
) -> None:
    image = push_image(model, repo, [b"x"])
    stale = model.retarget_tag(repo, "latest", image.manifest)
    assert stale is not None
    model.change_repository_tag_expiration(stale, datetime.now(UTC) + timedelta(days=3))
    # Our copy still says "no end": someone changed it meanwhile.
    assert model.change_repository_tag_expiration(stale, datetime.now(UTC) + timedelta(days=5)) == (
        None,
        False,
    )


def test_change_expiration_of_a_missing_tag_fails(
    model: SqlRegistryModel, repo: RepositoryReference
) -> None:
    image = push_image(model, repo, [b"x"])
    tag = model.retarget_tag(repo, "latest", image.manifest)
    assert tag is not None
    from dataclasses import replace

    ghost = replace(tag, id=tag.id + 1000)
    assert model.change_repository_tag_expiration(ghost, None) == (None, False)
