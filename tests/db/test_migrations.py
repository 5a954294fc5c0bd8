"""The Alembic migrations build exactly the schema ``moorage.db.tables`` declares, on both
databases, and the blob visibility check runs on the blob-then-repository index."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from moorage.db.migrate import alembic_config, upgrade
from moorage.db.tables import metadata
from moorage.model.sql.manifest_rows import visible_blob_query


@pytest.fixture(params=["sqlite", "postgres"])
def migrated_url(request: pytest.FixtureRequest, fresh_sqlite_url: str) -> str:
    url = (
        fresh_sqlite_url
        if request.param == "sqlite"
        else request.getfixturevalue("fresh_postgres_url")
    )
    upgrade(url)
    return url


def _schema_differences(url: str) -> list[object]:
    """What Alembic's autogenerate would change to make the database match ``tables.py``."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return list(compare_metadata(MigrationContext.configure(conn), metadata))
    finally:
        engine.dispose()


def test_migrations_match_the_declared_tables(migrated_url: str) -> None:
    assert _schema_differences(migrated_url) == []


def test_blob_links_are_indexed_by_blob_then_repository(migrated_url: str) -> None:
    engine = create_engine(migrated_url)
    try:
        inspector = inspect(engine)
        for table in ("manifest_blob", "legacy_image", "uploaded_blob"):
            columns = {
                index["name"]: index["column_names"] for index in inspector.get_indexes(table)
            }
            assert columns[f"ix_{table}_blob_repository"] == ["blob_id", "repository_id"]
            assert f"ix_{table}_blob_id" not in columns
    finally:
        engine.dispose()


def test_sqlite_checks_blob_visibility_with_one_index_probe_per_link(
    fresh_sqlite_url: str,
) -> None:
    """The query behind every blob HEAD/GET: before revision 0002, SQLite chose the
    repository_id indexes and walked every row the repository links."""
    upgrade(fresh_sqlite_url)
    engine = create_engine(fresh_sqlite_url)
    statement, params = visible_blob_query(2, "sha256:" + "ab" * 32, 0)
    compiled = statement.compile(dialect=engine.dialect)
    try:
        with engine.connect() as conn:
            plan = conn.exec_driver_sql(
                f"EXPLAIN QUERY PLAN {compiled.string}",
                tuple({**compiled.params, **params}[name] for name in compiled.positiontup or ()),
            ).all()
    finally:
        engine.dispose()
    details = [str(row[-1]) for row in plan]
    for table in ("manifest_blob", "legacy_image", "uploaded_blob"):
        assert any(f"ix_{table}_blob_repository" in detail for detail in details), details


def test_revision_0002_downgrades_and_upgrades_again(migrated_url: str) -> None:
    command.downgrade(alembic_config(migrated_url), "0001")
    engine = create_engine(migrated_url)
    try:
        names = {index["name"] for index in inspect(engine).get_indexes("manifest_blob")}
        assert "ix_manifest_blob_blob_id" in names
        assert "ix_manifest_blob_blob_repository" not in names
    finally:
        engine.dispose()
    upgrade(migrated_url)
    assert _schema_differences(migrated_url) == []
