"""SQLite is set up for concurrent use; migrations build the schema on both backends."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from moorage.db.engine import Database, create_database_engine, normalize_url
from moorage.db.migrate import alembic_config, current_revision, upgrade


def test_sqlite_uses_wal_busy_timeout_and_foreign_keys(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/wal.db"
    upgrade(url)
    database = Database(create_database_engine(url))
    with database.read() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_sqlite_write_transactions_take_the_lock_up_front(tmp_path: object) -> None:
    """BEGIN IMMEDIATE: a second writer cannot start while ours is open; readers can."""
    path = f"{tmp_path}/lock.db"
    upgrade(f"sqlite:///{path}")
    database = Database(create_database_engine(f"sqlite:///{path}"))
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    with database.write() as conn:
        conn.execute(text("SELECT 1"))  # nothing written yet, but the lock is held
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
        assert other.execute("SELECT count(*) FROM namespace").fetchone() == (0,)
    other.execute("BEGIN IMMEDIATE")
    other.execute("ROLLBACK")
    other.close()


def test_sqlite_writers_queue_instead_of_failing(tmp_path: object) -> None:
    path = f"{tmp_path}/queue.db"
    upgrade(f"sqlite:///{path}")
    database = Database(create_database_engine(f"sqlite:///{path}"))
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    done: list[bool] = []

    def write() -> None:
        with database.write() as conn:
            conn.execute(text("INSERT INTO storage_location (name) VALUES ('queued')"))
        done.append(True)

    thread = threading.Thread(target=write)
    thread.start()
    time.sleep(0.3)
    assert done == []  # waiting on the busy timeout, not failed
    blocker.execute("ROLLBACK")
    thread.join(timeout=10)
    assert done == [True]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_migrations_build_the_schema_and_are_idempotent(
    backend: str, tmp_path: object, request: pytest.FixtureRequest
) -> None:
    url = (
        f"sqlite:///{tmp_path}/m.db"
        if backend == "sqlite"
        else request.getfixturevalue("fresh_postgres_url")
    )
    upgrade(url)
    upgrade(url)
    engine = create_database_engine(url)
    names = set(inspect(engine).get_table_names())
    assert {
        "namespace",
        "repository",
        "tag",
        "manifest",
        "manifest_blob",
        "blob",
        "blob_placement",
        "legacy_image",
        "label",
        "blob_upload",
        "derived_image",
        "torrent_info",
        "uploaded_blob",
        "manifest_child",
    } <= names
    head = ScriptDirectory.from_config(alembic_config(str(engine.url))).get_current_head()
    assert current_revision(engine) == head  # the newest revision
    engine.dispose()


def test_plain_postgres_urls_use_psycopg3() -> None:
    assert normalize_url("postgresql://u:p@h/db").startswith("postgresql+psycopg://u:p@h/db")
    assert normalize_url("sqlite:///x.db") == "sqlite:///x.db"
