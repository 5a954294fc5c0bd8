"""Hot statements run straight on the database driver.

A SQLAlchemy ``Connection.execute`` of even a prebuilt statement costs 100+ µs of Python
(pool checkout, events, cache key, result machinery), several times what SQLite needs to
answer a primary-key lookup. The few queries on every pull (repository by name, tag to
manifest, manifest or blob by digest, tag listing) and the write transactions of every
pushed layer (upload session, blob commit) are compiled here once per dialect and run on a
raw driver cursor; SQLAlchemy's own type processors still convert parameters and results,
so rows hold the same values as ``Connection.execute`` would give, and DML is compiled for
the parameters given, as ``Connection.execute`` compiles it.

Reads, SQLite: an autocommit, query-only connection (a statement in WAL mode sees the latest
commit and never waits for writers). PostgreSQL: a pooled connection per call, returned
(rolled back) at once.

Writes (``FastSQL.write``): one transaction. SQLite: a connection with the engine's pragmas,
starting with ``BEGIN IMMEDIATE`` as ``Database.write`` does. PostgreSQL: a pooled
connection, committed or rolled back at the end.

SQLite connections of each kind are shared by all threads, last-in first-out (see
``_SqliteConnections``).
"""

from __future__ import annotations

import sqlite3
import threading
from collections import namedtuple
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import Select
from sqlalchemy.sql.dml import UpdateBase

_Processor = Callable[[Any], Any] | None
FastStatement = Select[Any] | UpdateBase  # module-level constants only: cached by identity


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    positional: tuple[str, ...] | None  # bind names in order, for positional paramstyles
    binds: tuple[tuple[str, Callable[[Any], Any]], ...]  # parameters needing conversion
    defaults: dict[str, Any]  # values fixed in the statement (``limit(1)`` and the like)
    row_type: Any  # a namedtuple class
    converters: tuple[tuple[int, Callable[[Any], Any]], ...]  # result columns needing it
    returns_rows: bool  # a select, or DML with an explicit RETURNING


class FastSQL:
    """Runs prebuilt statements (bound with ``bindparam``) on raw driver connections:
    reads with ``first``/``all``, write transactions with ``write``. Statements must be
    module-level constants: they are compiled once and cached by identity."""

    def __init__(
        self,
        engine: Engine,
        sqlite_path: str | None,
        busy_timeout_ms: int,
        sqlite_write_pragmas: Sequence[str] = (),
    ) -> None:
        self.engine = engine
        self.dialect = engine.dialect
        self.sqlite_path = sqlite_path  # None: use the engine's pool (PostgreSQL, :memory:)
        self.busy_timeout_ms = busy_timeout_ms
        self._compiled: dict[
            tuple[int, tuple[str, ...] | None], tuple[FastStatement, _Compiled]
        ] = {}
        self._readers = _SqliteConnections(
            sqlite_path, busy_timeout_ms, ("PRAGMA query_only = ON",)
        )
        # The writers get the engine's own settings.
        self._writers = _SqliteConnections(sqlite_path, busy_timeout_ms, sqlite_write_pragmas)

    # -- compiling -------------------------------------------------------------------

    def _compile(self, statement: FastStatement, keys: tuple[str, ...] | None = None) -> _Compiled:
        """``keys``: for DML, the parameter names given (``Connection.execute`` compiles an
        insert's or update's column list from them); None for a select."""
        cache_key = (id(statement), keys)
        cached = self._compiled.get(cache_key)
        if cached is not None and cached[0] is statement:
            return cached[1]
        compiled = statement.compile(
            dialect=self.dialect, column_keys=None if keys is None else list(keys)
        )
        if getattr(compiled, "insert_prefetch", None) or getattr(compiled, "update_prefetch", None):
            raise ValueError("fast statements take every column value as a parameter")
        binds = []
        defaults = {}
        for name, bind in compiled.binds.items():
            if bind.expanding:
                raise ValueError("fast statements do not run expanding (IN list) parameters")
            if not bind.required:
                defaults[name] = bind.effective_value
            processor = bind.type.dialect_impl(self.dialect).bind_processor(self.dialect)
            if processor is not None:
                binds.append((name, processor))
        columns = _result_columns(statement)
        processors: list[_Processor] = [
            column.type.dialect_impl(self.dialect).result_processor(self.dialect, None)
            for _key, column in columns
        ]
        positional = compiled.positiontup if compiled.positional else None
        entry = _Compiled(
            sql=compiled.string,
            positional=None if positional is None else tuple(positional),
            binds=tuple(binds),
            defaults=defaults,
            row_type=namedtuple("FastRow", [key for key, _column in columns]),
            converters=tuple(
                (index, processor)
                for index, processor in enumerate(processors)
                if processor is not None
            ),
            returns_rows=bool(columns),
        )
        self._compiled[cache_key] = (statement, entry)
        return entry

    def _arguments(self, compiled: _Compiled, params: Mapping[str, Any]) -> Any:
        if compiled.defaults:
            params = {**compiled.defaults, **params}
        if compiled.binds:
            params = dict(params)
            for name, processor in compiled.binds:
                params[name] = processor(params[name])
        if compiled.positional is None:
            return params
        return tuple(params[name] for name in compiled.positional)

    # -- running ---------------------------------------------------------------------

    def first(self, statement: Select[Any], params: Mapping[str, Any]) -> Any | None:
        rows = self._run(statement, params, one=True)
        return rows[0] if rows else None

    def all(self, statement: Select[Any], params: Mapping[str, Any]) -> list[Any]:
        return self._run(statement, params, one=False)

    def _run(self, statement: Select[Any], params: Mapping[str, Any], *, one: bool) -> list[Any]:
        compiled = self._compile(statement)
        args = self._arguments(compiled, params)
        if self.sqlite_path is not None:
            connection = self._readers.take()
            try:
                cursor = connection.execute(compiled.sql, args)
                raw = [cursor.fetchone()] if one else cursor.fetchall()
                cursor.close()
            finally:
                self._readers.give_back(connection)
        else:
            raw = self._pooled(compiled.sql, args, one=one)
        return [self._row(compiled, values) for values in raw if values is not None]

    @staticmethod
    def _row(compiled: _Compiled, values: tuple[Any, ...]) -> Any:
        if not compiled.converters:
            return compiled.row_type._make(values)
        converted = list(values)
        for index, processor in compiled.converters:
            value = converted[index]
            if value is not None:
                converted[index] = processor(value)
        return compiled.row_type._make(converted)

    @contextmanager
    def write(self) -> Iterator[FastTransaction]:
        """One write transaction: committed when the block ends, rolled back if it raises."""
        with self._sqlite_write() if self.sqlite_path is not None else self._pooled_write() as tx:
            yield tx

    @contextmanager
    def _sqlite_write(self) -> Iterator[FastTransaction]:
        connection = self._writers.take()
        try:
            connection.execute("BEGIN IMMEDIATE")  # queue on the lock now, not at commit
            cursor = connection.cursor()
            try:
                yield FastTransaction(self, cursor)
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise
            finally:
                cursor.close()
        finally:
            self._writers.give_back(connection)

    @contextmanager
    def _pooled_write(self) -> Iterator[FastTransaction]:
        pooled = self.engine.raw_connection()
        try:
            cursor = pooled.cursor()
            if self.dialect.name == "sqlite":  # in-memory SQLite: the engine's connection
                cursor.execute("BEGIN IMMEDIATE")
            yield FastTransaction(self, cursor)
            pooled.commit()
        except BaseException:
            try:
                pooled.rollback()
            except Exception:  # the connection broke (server restarted, backend killed)
                pooled.invalidate()  # closed for good, not handed out again
            raise  # the caller's error, not the rollback's
        finally:
            pooled.close()

    def _pooled(self, sql: str, args: Any, *, one: bool) -> list[Any]:
        connection = self.engine.raw_connection()
        try:
            cursor = connection.cursor()
            cursor.execute(sql, args)
            raw = [cursor.fetchone()] if one else list(cursor.fetchall())
            cursor.close()
            return raw
        finally:
            connection.close()  # back to the pool, rolled back: no snapshot is kept open

    def close(self) -> None:
        self._readers.close()
        self._writers.close()


class _SqliteConnections:
    """Raw connections to one SQLite file, opened on demand with ``setup`` pragmas and reused
    last-in first-out: as many stay open as were ever busy at once (a few), not one for every
    thread that ever ran a statement (up to the thread pool's 40), each with its own page
    cache and copy of the schema."""

    def __init__(self, path: str | None, busy_timeout_ms: int, setup: Sequence[str]) -> None:
        self.path, self.busy_timeout_ms, self.setup = path, busy_timeout_ms, tuple(setup)
        self._idle: list[sqlite3.Connection] = []
        self._opened: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    # list.pop and list.append are atomic: the idle list needs no lock of its own.
    def take(self) -> sqlite3.Connection:
        try:
            return self._idle.pop()
        except IndexError:
            return self._open()

    def give_back(self, connection: sqlite3.Connection) -> None:
        self._idle.append(connection)

    def _open(self) -> sqlite3.Connection:
        assert self.path is not None
        connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        connection.execute(f"PRAGMA busy_timeout = {self.busy_timeout_ms}")
        for pragma in self.setup:
            connection.execute(pragma)
        with self._lock:
            self._opened.append(connection)
        return connection

    @property
    def opened(self) -> int:
        return len(self._opened)

    def close(self) -> None:
        with self._lock:
            opened, self._opened, self._idle = self._opened, [], []
        for connection in opened:
            connection.close()


class FastResult:
    """What one statement of a ``FastTransaction`` gave: its rows (if it returns any) and the
    driver's row count, with the few ``Result`` methods the write paths use."""

    __slots__ = ("rowcount", "rows")

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self.rows, self.rowcount = rows, rowcount

    def __iter__(self) -> Iterator[Any]:
        return iter(self.rows)

    def first(self) -> Any | None:
        return self.rows[0] if self.rows else None

    def one(self) -> Any:
        if len(self.rows) != 1:
            raise LookupError(f"expected one row, got {len(self.rows)}")
        return self.rows[0]

    def scalar(self) -> Any | None:
        return self.rows[0][0] if self.rows else None

    def scalar_one(self) -> Any:
        return self.one()[0]


class FastTransaction:
    """Prebuilt statements in one write transaction on a raw driver cursor: the part of a
    SQLAlchemy ``Connection`` the hot write paths use (``execute`` and ``dialect``)."""

    __slots__ = ("_cursor", "_sql")

    def __init__(self, sql: FastSQL, cursor: Any) -> None:
        self._sql, self._cursor = sql, cursor

    @property
    def dialect(self) -> Dialect:
        return self._sql.dialect

    def execute(
        self, statement: FastStatement, params: Mapping[str, Any] | None = None
    ) -> FastResult:
        params = params or {}
        # DML is compiled for the parameters given, as Connection.execute compiles it.
        keys = None if isinstance(statement, Select) else tuple(sorted(params))
        compiled = self._sql._compile(statement, keys)
        cursor = self._cursor
        cursor.execute(compiled.sql, self._sql._arguments(compiled, params))
        rows = []
        if compiled.returns_rows:
            rows = [FastSQL._row(compiled, values) for values in cursor.fetchall()]
        return FastResult(rows, cursor.rowcount)


def _result_columns(statement: FastStatement) -> list[tuple[str, Any]]:
    """(key, column) of what the statement returns: a select's columns, or DML's explicit
    RETURNING (PostgreSQL's implicit RETURNING of a primary key is fetched by nobody)."""
    if isinstance(statement, Select):
        return list(zip(statement.selected_columns.keys(), statement.selected_columns, strict=True))
    if isinstance(statement, UpdateBase):
        returned = statement.exported_columns
        return [(str(key), column) for key, column in zip(returned.keys(), returned, strict=True)]
    raise TypeError(f"not a fast statement: {type(statement).__name__}")
