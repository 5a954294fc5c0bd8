"""Driver-level hot reads give the rows SQLAlchemy would and always see the latest commit;
driver-level write transactions commit, roll back and enforce constraints as SQLAlchemy's do."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from sqlite3 import OperationalError
from typing import Any

import psycopg
import pytest
from sqlalchemy import bindparam, func, select, text, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from moorage.db import tables as t
from moorage.db.engine import Database, create_database_engine
from moorage.db.migrate import upgrade

_NAMESPACE_BY_NAME = select(t.namespace).where(t.namespace.c.name == bindparam("name"))
_NAMES_AFTER = (
    select(t.namespace.c.name)
    .where(t.namespace.c.name > bindparam("after"))
    .order_by(t.namespace.c.name)
    .limit(2)
)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/fast.db"
    else:
        url = request.getfixturevalue("fresh_postgres_url")
    upgrade(url)
    database = Database(create_database_engine(url))
    yield database
    database.close()


def _add_namespace(database: Database, name: str, enabled: bool = True) -> None:
    with database.write() as conn:
        conn.execute(
            t.namespace.insert().values(
                uuid=f"uuid-{name}",
                name=name,
                kind="user",
                enabled=enabled,
                removed_tag_expiration_s=60,
                created=datetime(2026, 1, 2, tzinfo=UTC),
            )
        )


def test_rows_match_sqlalchemy_results_with_converted_types(database: Database) -> None:
    _add_namespace(database, "acme", enabled=False)
    fast = database.first(_NAMESPACE_BY_NAME, {"name": "acme"})
    with database.read() as conn:
        slow = conn.execute(_NAMESPACE_BY_NAME, {"name": "acme"}).one()
    assert fast is not None
    assert fast._asdict() == slow._asdict()
    assert fast.enabled is False  # a boolean, not SQLite's 0
    assert isinstance(fast.created, datetime)
    assert database.first(_NAMESPACE_BY_NAME, {"name": "nobody"}) is None


def test_a_commit_is_visible_to_the_next_read(database: Database) -> None:
    assert database.first(_NAMESPACE_BY_NAME, {"name": "late"}) is None
    _add_namespace(database, "late")
    found = database.first(_NAMESPACE_BY_NAME, {"name": "late"})
    assert found is not None and found.name == "late"


def test_fixed_limits_and_ordering_apply(database: Database) -> None:
    for name in ("c", "a", "d", "b"):
        _add_namespace(database, name)
    assert [row.name for row in database.all(_NAMES_AFTER, {"after": "a"})] == ["b", "c"]


def test_sqlite_hot_reads_cannot_write(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/ro.db"
    upgrade(url)
    database = Database(create_database_engine(url))
    connection = database.fast._readers.take()
    with pytest.raises(OperationalError, match="readonly"):
        connection.execute("DELETE FROM namespace")
    database.close()


# -- write transactions ------------------------------------------------------------------

_NEW_NAMESPACE = t.namespace.insert().returning(t.namespace.c.id, t.namespace.c.created)
_NEW_NAMESPACE_ONCE = (
    sqlite_insert(t.namespace).on_conflict_do_nothing(index_elements=["name"]),
    postgresql_insert(t.namespace).on_conflict_do_nothing(index_elements=["name"]),
)
_DISABLE = (
    update(t.namespace)
    .where(t.namespace.c.name == bindparam("target"))
    .values(enabled=bindparam("now_enabled"))
)
_NEW_REPOSITORY = t.repository.insert()
_NAMESPACES_IN = select(t.namespace).where(
    t.namespace.c.name.in_(bindparam("names", expanding=True))
)


def _namespace_values(name: str) -> dict[str, object]:
    return {
        "uuid": f"uuid-{name}",
        "name": name,
        "kind": "user",
        "enabled": True,
        "removed_tag_expiration_s": 60,
        "created": datetime(2026, 1, 2, tzinfo=UTC),
    }


def _ignoring(database: Database) -> Any:
    return _NEW_NAMESPACE_ONCE[0 if database.is_sqlite else 1]


def test_a_fast_write_commits_what_sqlalchemy_then_reads(database: Database) -> None:
    with database.fast_write() as tx:
        returned = tx.execute(_NEW_NAMESPACE, _namespace_values("fast")).one()
        changed = tx.execute(_DISABLE, {"target": "fast", "now_enabled": False}).rowcount
    assert changed == 1
    assert isinstance(returned.created, datetime)  # RETURNING rows are converted too
    with database.read() as conn:
        row = conn.execute(_NAMESPACE_BY_NAME, {"name": "fast"}).one()
    assert row.id == returned.id
    assert row.enabled is False


def test_a_failing_fast_write_leaves_nothing(database: Database) -> None:
    with pytest.raises(RuntimeError), database.fast_write() as tx:
        tx.execute(_NEW_NAMESPACE, _namespace_values("rolled-back"))
        raise RuntimeError("the caller failed midway")
    assert database.first(_NAMESPACE_BY_NAME, {"name": "rolled-back"}) is None
    with database.fast_write() as tx:  # the connection is usable again
        tx.execute(_NEW_NAMESPACE, _namespace_values("after"))
    assert database.first(_NAMESPACE_BY_NAME, {"name": "after"}) is not None


def test_conflicts_report_no_row_changed(database: Database) -> None:
    with database.fast_write() as tx:
        first = tx.execute(_ignoring(database), _namespace_values("once")).rowcount
    with database.fast_write() as tx:
        again = tx.execute(_ignoring(database), _namespace_values("once")).rowcount
    assert (first, again) == (1, 0)


def test_foreign_keys_hold_in_fast_writes(database: Database) -> None:
    """A repository in a namespace that does not exist is refused, as with SQLAlchemy."""
    orphan = {
        "namespace_id": 424242,
        "name": "orphan",
        "kind": "image",
        "visibility": "private",
        "created": datetime(2026, 1, 2, tzinfo=UTC),
    }
    with (
        pytest.raises((sqlite3.IntegrityError, psycopg.IntegrityError)),
        database.fast_write() as tx,
    ):
        tx.execute(_NEW_REPOSITORY, orphan)
    with database.read() as conn:
        assert conn.execute(select(t.repository)).first() is None


def test_in_lists_are_refused(database: Database) -> None:
    with pytest.raises(ValueError, match="expanding"), database.fast_write() as tx:
        tx.execute(_NAMESPACES_IN, {"names": ["a"]})


def test_sqlite_fast_writers_queue_behind_another_writer(tmp_path: Path) -> None:
    """``BEGIN IMMEDIATE``: a second writer waits for the lock instead of failing."""
    url = f"sqlite:///{tmp_path}/queue.db"
    upgrade(url)
    database = Database(create_database_engine(url))
    done: list[str] = []

    def second_writer() -> None:
        with database.fast_write() as tx:
            tx.execute(_NEW_NAMESPACE, _namespace_values("second"))
        done.append("second")

    with database.fast_write() as tx:
        tx.execute(_NEW_NAMESPACE, _namespace_values("first"))
        thread = threading.Thread(target=second_writer)
        thread.start()
        thread.join(0.3)
        assert done == []  # still waiting on the lock this transaction holds
    thread.join(10)
    assert done == ["second"]
    assert database.first(_NAMESPACE_BY_NAME, {"name": "second"}) is not None
    database.close()


def test_sqlite_connections_are_shared_across_threads_not_opened_per_thread(
    tmp_path: Path,
) -> None:
    """Twenty request threads, one after another: one reader and one writer stay open, not
    twenty of each (every SQLite connection holds its own page cache and schema copy)."""
    url = f"sqlite:///{tmp_path}/shared.db"
    upgrade(url)
    database = Database(create_database_engine(url))

    def request(index: int) -> None:
        with database.fast_write() as tx:
            tx.execute(_NEW_NAMESPACE, _namespace_values(f"ns{index}"))
        assert database.first(_NAMESPACE_BY_NAME, {"name": f"ns{index}"}) is not None

    for index in range(20):
        thread = threading.Thread(target=request, args=(index,))
        thread.start()
        thread.join()
    assert (database.fast._readers.opened, database.fast._writers.opened) == (1, 1)
    database.close()


_BACKEND_PID = select(func.pg_backend_pid())


def test_a_postgresql_connection_killed_mid_transaction_is_replaced(
    fresh_postgres_url: str,
) -> None:
    """The failing write reports the driver's error, and the next one runs on a fresh
    connection: a worker outlives a restarted or killed database backend."""
    upgrade(fresh_postgres_url)
    database = Database(create_database_engine(fresh_postgres_url))
    with pytest.raises(psycopg.OperationalError), database.fast_write() as tx:
        pid = tx.execute(_BACKEND_PID).scalar_one()
        with database.engine.connect() as admin:
            admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        tx.execute(_NEW_NAMESPACE, _namespace_values("lost"))
    with database.fast_write() as tx:
        tx.execute(_NEW_NAMESPACE, _namespace_values("after"))
    assert database.first(_NAMESPACE_BY_NAME, {"name": "after"}) is not None
    assert database.first(_NAMESPACE_BY_NAME, {"name": "lost"}) is None
    database.close()
