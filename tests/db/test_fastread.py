"""Driver-level hot reads give the rows SQLAlchemy would, and always see the latest commit."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from sqlite3 import OperationalError

import pytest
from sqlalchemy import bindparam, select

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
    connection = database.fast._sqlite()
    with pytest.raises(OperationalError, match="readonly"):
        connection.execute("DELETE FROM namespace")
    database.close()
