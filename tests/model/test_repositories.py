"""lookup_repository, is_namespace_enabled and the administration around them."""

from __future__ import annotations

import pytest

from moorage.db import tables as t
from moorage.domain.errors import DataModelError, InvalidNameError
from moorage.domain.records import (
    NamespaceKind,
    RepositoryKind,
    RepositoryReference,
    RepositoryState,
    Visibility,
)
from moorage.model.sql import SqlRegistryModel
from moorage.model.sql.base import insert_ignoring_conflict


def test_lookup_repository_returns_a_reference_with_its_attributes(
    model: SqlRegistryModel, repo: RepositoryReference
) -> None:
    found = model.lookup_repository("devtable", "simple")
    assert found == repo
    assert found is not None
    assert (found.namespace_name, found.name, found.full_name) == (
        "devtable",
        "simple",
        "devtable/simple",
    )
    assert found.kind is RepositoryKind.IMAGE
    assert found.is_public is False
    assert found.is_free_namespace is True
    assert found.state is RepositoryState.NORMAL


def test_lookup_repository_unknown_names_are_none(
    model: SqlRegistryModel, repo: RepositoryReference
) -> None:
    assert model.lookup_repository("devtable", "unknownrepo") is None
    assert model.lookup_repository("nobody", "simple") is None


def test_lookup_repository_kind_filter_hides_other_kinds(model: SqlRegistryModel) -> None:
    model.create_namespace("buynlarge", NamespaceKind.ORGANIZATION)
    model.create_repository("buynlarge", "chart", kind=RepositoryKind.APPLICATION)
    assert model.lookup_repository("buynlarge", "chart", RepositoryKind.IMAGE) is None
    app = model.lookup_repository("buynlarge", "chart", RepositoryKind.APPLICATION)
    assert app is not None and app.kind is RepositoryKind.APPLICATION
    assert model.lookup_repository("buynlarge", "chart") == app


def test_lookup_repository_reports_visibility_state_and_nested_names(
    model: SqlRegistryModel, repo: RepositoryReference
) -> None:
    public = model.create_repository("devtable", "team/app", visibility=Visibility.PUBLIC)
    assert public is not None and public.is_public
    model.set_repository_state(public, RepositoryState.READ_ONLY)
    found = model.lookup_repository("devtable", "team/app")
    assert found is not None and found.state is RepositoryState.READ_ONLY


def test_lookup_repository_does_not_check_enabled_namespaces(
    model: SqlRegistryModel, repo: RepositoryReference
) -> None:
    model.set_namespace_enabled("devtable", False)
    assert model.lookup_repository("devtable", "simple") == repo


def test_is_namespace_enabled(model: SqlRegistryModel, repo: RepositoryReference) -> None:
    model.create_namespace("disabled")
    assert model.is_namespace_enabled("devtable") is True
    assert model.set_namespace_enabled("disabled", False) is True
    assert model.is_namespace_enabled("disabled") is False
    assert model.is_namespace_enabled("doesnotexist") is False
    assert model.set_namespace_enabled("doesnotexist", False) is False


def test_namespaces_and_repositories_validate_names(model: SqlRegistryModel) -> None:
    with pytest.raises(InvalidNameError):
        model.create_namespace("Bad_Name")
    with pytest.raises(InvalidNameError):
        model.create_namespace("../etc")
    model.create_namespace("okname")
    with pytest.raises(DataModelError):
        model.create_namespace("okname")
    with pytest.raises(InvalidNameError):
        model.create_repository("okname", "../escape")
    assert model.create_repository("missing", "repo") is None


def test_create_repository_is_idempotent(
    model: SqlRegistryModel, repo: RepositoryReference
) -> None:
    assert model.create_repository("devtable", "simple") == repo


def test_namespace_time_machine_window_defaults_to_two_weeks(model: SqlRegistryModel) -> None:
    made = model.create_namespace("windowed")
    assert made.removed_tag_expiration_s == 1_209_600
    short = model.create_namespace("short", removed_tag_expiration_s=60)
    assert short.removed_tag_expiration_s == 60
    with pytest.raises(DataModelError):
        model.create_namespace("negative", removed_tag_expiration_s=-1)


def test_create_repository_returns_the_existing_one_unchanged(
    model: SqlRegistryModel, repo: RepositoryReference
) -> None:
    again = model.create_repository(
        "devtable", "simple", visibility=Visibility.PUBLIC, kind=RepositoryKind.APPLICATION
    )
    assert again == repo and again is not None
    assert not again.is_public and again.kind is RepositoryKind.IMAGE


def test_a_namespace_email_taken_by_another_is_refused_and_nothing_is_created(
    model: SqlRegistryModel,
) -> None:
    model.create_namespace("first", email="ops@example.test")
    with pytest.raises(DataModelError, match="e-mail"):
        model.create_namespace("second", email="ops@example.test")
    assert model.get_namespace("second") is None


def test_insert_ignoring_conflict_tells_whether_it_inserted(model: SqlRegistryModel) -> None:
    """On both databases and both kinds of transaction (on PostgreSQL a SQLAlchemy
    connection reported -1 rows for such an insert, which read as "inserted")."""
    values = {"name": "elsewhere"}
    with model.database.write() as conn:
        assert insert_ignoring_conflict(conn, t.storage_location, values, ["name"]) is True
    with model.database.write() as conn:
        assert insert_ignoring_conflict(conn, t.storage_location, values, ["name"]) is False
    with model.database.fast_write() as fast:
        assert insert_ignoring_conflict(fast, t.storage_location, values, ["name"]) is False
        other = {"name": "elsewhere-too"}
        assert insert_ignoring_conflict(fast, t.storage_location, other, ["name"]) is True
