"""``moorage db`` creates and reports the schema, repeatably."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from support.cli import moorage
from support.pgserver import free_port


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def test_upgrade_creates_schema_and_is_idempotent(tmp_path: Path) -> None:
    db_file = tmp_path / "nested" / "registry.db"
    url = f"sqlite:///{db_file}"
    assert moorage("db", "current", "--database-url", url).stdout.startswith("none")

    first = moorage("db", "upgrade", "--database-url", url)
    assert first.returncode == 0, first.stderr
    created = tables(db_file)
    assert {"alembic_version", "repository", "manifest", "tag", "blob"} <= created

    second = moorage("db", "upgrade", "--database-url", url)
    assert second.returncode == 0, second.stderr
    assert tables(db_file) == created
    revision = first.stdout.split()[-1]
    assert second.stdout.split()[-1] == revision
    assert moorage("db", "current", "--database-url", url).stdout.strip() == revision


def test_upgrade_uses_the_configured_data_dir(tmp_path: Path) -> None:
    result = moorage("db", "upgrade", env={"MOORAGE_DATA_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert "alembic_version" in tables(tmp_path / "moorage.db")


def test_unreachable_database_is_a_one_line_error() -> None:
    url = f"postgresql://moorage:hunter2@127.0.0.1:{free_port()}/moorage"
    result = moorage("db", "upgrade", "--database-url", url)
    assert result.returncode == 1
    assert result.stderr.startswith("error: cannot reach the database")
    assert "Traceback" not in result.stderr
    assert "hunter2" not in result.stderr


@pytest.mark.postgres
def test_upgrade_on_postgresql(fresh_postgres_url: str) -> None:
    first = moorage("db", "upgrade", "--database-url", fresh_postgres_url)
    assert first.returncode == 0, first.stderr
    assert moorage("db", "upgrade", "--database-url", fresh_postgres_url).returncode == 0
    current = moorage("db", "current", "--database-url", fresh_postgres_url)
    assert current.stdout.strip() == first.stdout.split()[-1]
