"""Engine setup and transactions, tuned per backend.

SQLite: WAL journal, a busy timeout, foreign keys on, and ``BEGIN IMMEDIATE`` for write
transactions so that two writers queue on the lock instead of failing at commit time; reads
are single statements in autocommit.
PostgreSQL: psycopg 3; callers take row locks (``FOR UPDATE``) where semantics need them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.sql import Select

from moorage.db.fastsql import FastSQL, FastTransaction

SQLITE_BUSY_TIMEOUT_MS = 30_000
# What the model's shared helpers accept: a SQLAlchemy connection or a fast transaction.
Executor = Connection | FastTransaction
SQLITE_CONNECTION_PRAGMAS = ("PRAGMA foreign_keys = ON", "PRAGMA synchronous = NORMAL")
SQLITE_POOL_SIZE = 40  # anyio's default worker thread count


def normalize_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs and use the psycopg 3 driver for them."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def sqlite_file(url: str | URL) -> str | None:
    """The database file of an on-disk SQLite URL; None for other databases and for
    in-memory SQLite (no file: no WAL, and every connection sees its own database)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return parsed.database


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_conn.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        for pragma in SQLITE_CONNECTION_PRAGMAS:
            cursor.execute(pragma)
        # WAL is a property of the file: set it once. Asking again would need a lock
        # that a busy writer holds, and the pragma does not wait on the busy timeout.
        on_disk = sqlite_file(engine.url) is not None
        if on_disk and cursor.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            cursor.execute("PRAGMA journal_mode = WAL")
        cursor.close()


def create_database_engine(url: str, *, pool_size: int = 10) -> Engine:
    url = normalize_url(url)
    if sqlite_file(url) is not None:
        # As many connections as request threads: SQLite connections are cheap to keep and
        # costly to reopen (pragmas), and readers never block each other in WAL mode.
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=SQLITE_POOL_SIZE,
            max_overflow=SQLITE_POOL_SIZE,
        )
        _configure_sqlite(engine)
        return engine
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False})
        _configure_sqlite(engine)
        return engine
    return create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


@dataclass(frozen=True, slots=True)
class Database:
    """Hands out read and write transactions on one engine, and runs the hot read queries
    and the hot write transactions on the driver directly (``first``/``all``/``fast_write``,
    see ``moorage.db.fastsql``)."""

    engine: Engine
    fast: FastSQL = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        fast = FastSQL(
            self.engine,
            sqlite_file(self.engine.url),
            busy_timeout_ms=SQLITE_BUSY_TIMEOUT_MS,
            sqlite_write_pragmas=SQLITE_CONNECTION_PRAGMAS,
        )
        object.__setattr__(self, "fast", fast)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def first(self, statement: Select[Any], params: Mapping[str, Any]) -> Any | None:
        """The first row of a prebuilt read-only ``select``, or None (autocommit read)."""
        return self.fast.first(statement, params)

    def all(self, statement: Select[Any], params: Mapping[str, Any]) -> list[Any]:
        return self.fast.all(statement, params)

    def close(self) -> None:
        self.fast.close()
        self.engine.dispose()

    @contextmanager
    def write(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, conn.begin():
            if self.is_sqlite:
                # Issued here rather than from a "begin" event: any engine event listener
                # makes SQLAlchemy dispatch events on every connection and statement.
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            yield conn

    @contextmanager
    def fast_write(self) -> Iterator[FastTransaction]:
        """A write transaction on the raw driver for prebuilt statements (module constants,
        no IN lists): what every pushed layer runs. ``write`` for everything else."""
        with self.fast.write() as transaction:
            yield transaction

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    def ping(self) -> None:
        with self.read() as conn:
            conn.exec_driver_sql("SELECT 1")
