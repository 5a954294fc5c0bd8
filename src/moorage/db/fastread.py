"""Hot read queries run straight on the database driver.

A SQLAlchemy ``Connection.execute`` of even a prebuilt statement costs 100+ µs of Python
(pool checkout, events, cache key, result machinery), several times what SQLite needs to
answer a primary-key lookup. The few queries on every pull (repository by name, tag to
manifest, manifest or blob by digest, tag listing) are compiled here once per dialect and
run on a raw driver cursor; SQLAlchemy's own type processors still convert parameters and
results, so rows hold the same values as ``Connection.execute`` would give.

SQLite: each thread keeps one autocommit connection for these reads (a statement in WAL
mode sees the latest commit and never waits for writers). PostgreSQL: a pooled connection per
call, returned (rolled back) at once.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import namedtuple
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.sql import Select

_Processor = Callable[[Any], Any] | None


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    positional: tuple[str, ...] | None  # bind names in order, for positional paramstyles
    binds: tuple[tuple[str, Callable[[Any], Any]], ...]  # parameters needing conversion
    defaults: dict[str, Any]  # values fixed in the statement (``limit(1)`` and the like)
    row_type: Any  # a namedtuple class
    converters: tuple[tuple[int, Callable[[Any], Any]], ...]  # result columns needing it


class FastReader:
    """Runs read-only ``select`` statements (bound with ``bindparam``) on raw driver
    connections. Statements must be module-level constants: they are compiled once and
    cached by identity."""

    def __init__(self, engine: Engine, sqlite_path: str | None, busy_timeout_ms: int) -> None:
        self.engine = engine
        self.dialect = engine.dialect
        self.sqlite_path = sqlite_path  # None: use the engine's pool (PostgreSQL, :memory:)
        self.busy_timeout_ms = busy_timeout_ms
        self._compiled: dict[int, tuple[Select[Any], _Compiled]] = {}
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    # -- compiling -------------------------------------------------------------------

    def _compile(self, statement: Select[Any]) -> _Compiled:
        cached = self._compiled.get(id(statement))
        if cached is not None and cached[0] is statement:
            return cached[1]
        compiled = statement.compile(dialect=self.dialect)
        binds = []
        defaults = {}
        for name, bind in compiled.binds.items():
            if bind.expanding:
                raise ValueError("FastReader does not run expanding (IN list) parameters")
            if not bind.required:
                defaults[name] = bind.effective_value
            processor = bind.type.dialect_impl(self.dialect).bind_processor(self.dialect)
            if processor is not None:
                binds.append((name, processor))
        columns = list(statement.selected_columns)
        keys = list(statement.selected_columns.keys())
        processors: list[_Processor] = [
            column.type.dialect_impl(self.dialect).result_processor(self.dialect, None)
            for column in columns
        ]
        positional = compiled.positiontup if compiled.positional else None
        entry = _Compiled(
            sql=compiled.string,
            positional=None if positional is None else tuple(positional),
            binds=tuple(binds),
            defaults=defaults,
            row_type=namedtuple("FastRow", keys),
            converters=tuple(
                (index, processor)
                for index, processor in enumerate(processors)
                if processor is not None
            ),
        )
        self._compiled[id(statement)] = (statement, entry)
        return entry

    # -- running ---------------------------------------------------------------------

    def first(self, statement: Select[Any], params: Mapping[str, Any]) -> Any | None:
        rows = self._run(statement, params, one=True)
        return rows[0] if rows else None

    def all(self, statement: Select[Any], params: Mapping[str, Any]) -> list[Any]:
        return self._run(statement, params, one=False)

    def _run(self, statement: Select[Any], params: Mapping[str, Any], *, one: bool) -> list[Any]:
        compiled = self._compile(statement)
        if compiled.defaults:
            params = {**compiled.defaults, **params}
        if compiled.binds:
            params = dict(params)
            for name, processor in compiled.binds:
                params[name] = processor(params[name])
        args: Any = (
            params
            if compiled.positional is None
            else tuple(params[name] for name in compiled.positional)
        )
        if self.sqlite_path is not None:
            cursor = self._sqlite().execute(compiled.sql, args)
            raw = [cursor.fetchone()] if one else cursor.fetchall()
            cursor.close()
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

    def _sqlite(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            assert self.sqlite_path is not None
            connection = sqlite3.connect(
                self.sqlite_path, isolation_level=None, check_same_thread=False
            )
            connection.execute(f"PRAGMA busy_timeout = {self.busy_timeout_ms}")
            connection.execute("PRAGMA query_only = ON")
            self._local.connection = connection
            with self._lock:
                self._opened.append(connection)
        return connection

    def close(self) -> None:
        with self._lock:
            opened, self._opened = self._opened, []
        for connection in opened:
            connection.close()
        self._local = threading.local()
