"""Manifest labels and the quay.expires-after handler."""

from __future__ import annotations

from dataclasses import replace

import pytest
from tests.model.builders import push_image
from tests.model.conftest import FakeClock

from moorage.domain.errors import (
    ImmutableLabelError,
    InvalidLabelKeyError,
    InvalidMediaTypeError,
)
from moorage.domain.records import Manifest, RepositoryReference
from moorage.model.sql import SqlRegistryModel


@pytest.fixture
def manifest(model: SqlRegistryModel, repo: RepositoryReference) -> Manifest:
    return push_image(model, repo, [b"labelled"]).manifest


def test_create_get_list_delete(model: SqlRegistryModel, manifest: Manifest) -> None:
    created = model.create_manifest_label(manifest, "foo", "bar", "api")
    assert created is not None
    assert (created.key, created.value, created.source_type_name, created.media_type_name) == (
        "foo",
        "bar",
        "api",
        "text/plain",
    )
    assert model.get_manifest_label(manifest, created.uuid) == created
    assert created in model.list_manifest_labels(manifest)
    assert created in model.list_manifest_labels(manifest, key_prefix="fo")
    assert model.list_manifest_labels(manifest, key_prefix="ba") == []
    assert model.delete_manifest_label(manifest, created.uuid) == created
    assert model.get_manifest_label(manifest, created.uuid) is None
    assert model.delete_manifest_label(manifest, created.uuid) is None


def test_duplicate_keys_and_prefix_filter(model: SqlRegistryModel, manifest: Manifest) -> None:
    first = model.create_manifest_label(manifest, "hello", "world", "api")
    model.create_manifest_label(manifest, "hello", "again", "api")
    model.create_manifest_label(manifest, "other", "x", "api")
    assert first is not None
    assert len(model.list_manifest_labels(manifest, key_prefix="hello")) == 2
    model.delete_manifest_label(manifest, first.uuid)
    assert [lb.value for lb in model.list_manifest_labels(manifest, key_prefix="hello")] == [
        "again"
    ]
    assert len(model.list_manifest_labels(manifest, key_prefix="HEL")) == 1  # case-insensitive


def test_prefix_wildcards_are_literal(model: SqlRegistryModel, manifest: Manifest) -> None:
    model.create_manifest_label(manifest, "a_b", "1", "manifest")
    model.create_manifest_label(manifest, "axb", "2", "api")
    model.create_manifest_label(manifest, "a%c", "3", "manifest")
    assert [lb.key for lb in model.list_manifest_labels(manifest, key_prefix="a_")] == ["a_b"]
    assert [lb.key for lb in model.list_manifest_labels(manifest, key_prefix="a%")] == ["a%c"]


@pytest.mark.parametrize(
    ("value", "media_type"),
    [
        ('{"some": "json"}', "application/json"),
        ("[1, 2, 3]", "application/json"),
        ("[hello world]", "text/plain"),
        ("{wassup?!}", "text/plain"),
        ("plain", "text/plain"),
    ],
)
def test_media_type_is_inferred(
    model: SqlRegistryModel, manifest: Manifest, value: str, media_type: str
) -> None:
    label = model.create_manifest_label(manifest, "key", value, "api")
    assert label is not None and label.media_type_name == media_type


def test_explicit_media_types(model: SqlRegistryModel, manifest: Manifest) -> None:
    label = model.create_manifest_label(manifest, "doc", "# title", "api", "text/markdown")
    assert label is not None and label.media_type_name == "text/markdown"
    with pytest.raises(InvalidMediaTypeError):
        model.create_manifest_label(manifest, "doc", "x", "api", "image/png")
    with pytest.raises(InvalidMediaTypeError):
        model.create_manifest_label(manifest, "doc", "x", "nosuchsource")


@pytest.mark.parametrize(
    "key",
    [
        "",
        "Upper",
        "under_score",
        "-lead",
        "trail-",
        "double..dot",
        "dash-.dot",
        "a" * 256,
        "sp ace",
    ],
)
def test_invalid_keys_are_refused_for_api_labels(
    model: SqlRegistryModel, manifest: Manifest, key: str
) -> None:
    with pytest.raises(InvalidLabelKeyError):
        model.create_manifest_label(manifest, key, "v", "api")
    assert model.list_manifest_labels(manifest) == []


def test_manifest_labels_skip_the_key_grammar(model: SqlRegistryModel, manifest: Manifest) -> None:
    label = model.create_manifest_label(manifest, "theoretically-invalid--label", "v", "manifest")
    assert label is not None and label.source_type_name == "manifest"
    with pytest.raises(InvalidLabelKeyError):
        model.create_manifest_label(manifest, "", "v", "manifest")


def test_only_api_labels_are_deletable(model: SqlRegistryModel, manifest: Manifest) -> None:
    fixed = model.create_manifest_label(manifest, "from.config", "v", "manifest")
    internal = model.create_manifest_label(manifest, "internal.thing", "v", "internal")
    assert fixed is not None and internal is not None
    for label in (fixed, internal):
        with pytest.raises(ImmutableLabelError):
            model.delete_manifest_label(manifest, label.uuid)
        assert model.get_manifest_label(manifest, label.uuid) == label


def test_labels_belong_to_one_manifest(
    model: SqlRegistryModel, repo: RepositoryReference, manifest: Manifest
) -> None:
    other = push_image(model, repo, [b"other"], seed="o").manifest
    label = model.create_manifest_label(manifest, "foo", "bar", "api")
    assert label is not None
    assert model.get_manifest_label(other, label.uuid) is None
    assert model.delete_manifest_label(other, label.uuid) is None
    assert model.get_manifest_label(manifest, label.uuid) == label


def test_label_on_a_missing_manifest(model: SqlRegistryModel, manifest: Manifest) -> None:
    ghost = replace(manifest, id=manifest.id + 999)
    assert model.create_manifest_label(ghost, "foo", "bar", "api") is None


@pytest.mark.parametrize(
    ("value", "seconds"), [("2h", 7200), ("1d", 86400), ("2w", 1209600), ("90m", 5400), ("45s", 45)]
)
def test_expires_after_sets_the_tag_end(
    model: SqlRegistryModel, repo: RepositoryReference, manifest: Manifest, value: str, seconds: int
) -> None:
    tag = model.retarget_tag(repo, "latest", manifest)
    assert tag is not None
    model.create_manifest_label(manifest, "quay.expires-after", value, "manifest")
    updated = model.get_repo_tag(repo, "latest") if seconds > 60 else None
    history, _ = model.list_repository_tag_history(repo)
    assert history[0].lifetime_end_ts == tag.lifetime_start_ts + seconds
    if updated is not None:
        assert updated.lifetime_end_ts == tag.lifetime_start_ts + seconds


@pytest.mark.parametrize("value", ["1g", "something", "1.5h", "", "-2h", "0s"])
def test_bad_expires_after_values_are_ignored(
    model: SqlRegistryModel, repo: RepositoryReference, manifest: Manifest, value: str
) -> None:
    model.retarget_tag(repo, "latest", manifest)
    label = model.create_manifest_label(manifest, "quay.expires-after", value, "manifest")
    assert label is not None
    tag = model.get_repo_tag(repo, "latest")
    assert tag is not None and tag.lifetime_end_ms is None


def test_expiry_survives_label_deletion_and_is_reapplied_on_move(
    model: SqlRegistryModel, repo: RepositoryReference, manifest: Manifest, clock: FakeClock
) -> None:
    model.retarget_tag(repo, "latest", manifest)
    model.create_manifest_label(manifest, "quay.expires-after", "1d", "manifest")
    clock.advance(60)
    moved = model.retarget_tag(repo, "stable", manifest)
    assert moved is not None and moved.lifetime_end_ts == moved.lifetime_start_ts + 86400
    api = model.create_manifest_label(manifest, "note", "x", "api")
    assert api is not None
    model.delete_manifest_label(manifest, api.uuid)
    latest = model.get_repo_tag(repo, "latest")
    assert latest is not None and latest.lifetime_end_ms is not None
