"""Per-digest locks between pushers and the garbage collector, across worker processes.

A pusher holds a digest *shared* from before it moves the bytes to their content-addressed
key until the blob row and placement are committed; GC holds it *exclusive* from its
re-check of a blob's references until the row and the bytes are both gone (docs/gc.md).
Pushers of one digest never wait on each other; GC never waits at all (a held digest is
skipped until the next cycle), so no pusher is ever slowed by more than one GC delete.

PostgreSQL: session advisory locks, on connections of a small pool of their own (a pusher
that holds one and waits for a connection to commit on cannot starve the main pool).
SQLite: ``flock`` on one of 256 files next to the database (every process of an SQLite
deployment shares its disk; the kernel drops a dead process's locks); two digests sharing a
file only share a lock.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.exc import DBAPIError

from moorage.db.engine import Database, sqlite_file

# The advisory lock's first key: which kind of thing is locked ("GC"); the second, a hash.
DIGEST_LOCK_CLASS = 0x4743
SQLITE_LOCK_FILES = 256
_SHARED = text("SELECT pg_advisory_lock_shared(:class_id, :object_id)")
_SHARED_UNLOCK = text("SELECT pg_advisory_unlock_shared(:class_id, :object_id)")
_TRY_EXCLUSIVE = text("SELECT pg_try_advisory_lock(:class_id, :object_id)")
_EXCLUSIVE_UNLOCK = text("SELECT pg_advisory_unlock(:class_id, :object_id)")


def _hash(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big", signed=True)


class DigestLocks:
    def __init__(self, database: Database) -> None:
        self.database = database
        self._engine: Engine | None = None
        self._dir: Path | None = None
        self._mutex = threading.Lock()

    # -- the two holds -------------------------------------------------------------------

    @contextmanager
    def shared(self, digest: str) -> Iterator[None]:
        """Held while a push makes bytes and a row for ``digest``; waits for a GC delete."""
        if self.database.is_sqlite:
            with self._flock(digest, fcntl.LOCK_SH):
                yield
            return
        params = {"class_id": DIGEST_LOCK_CLASS, "object_id": _hash(digest)}
        with self._connection(_SHARED, params) as conn:
            try:
                yield
            finally:
                conn.execute(_SHARED_UNLOCK, params)

    @contextmanager
    def exclusive(self, digest: str) -> Iterator[bool]:
        """Yields True holding ``digest`` alone (no push of it in flight, no other GC),
        False at once when someone holds it."""
        if self.database.is_sqlite:
            with self._flock(digest, fcntl.LOCK_EX | fcntl.LOCK_NB) as held:
                yield held
            return
        params = {"class_id": DIGEST_LOCK_CLASS, "object_id": _hash(digest)}
        with self._connection(_TRY_EXCLUSIVE, params) as conn:
            held = bool(conn.info.pop("gc_lock_result"))
            try:
                yield held
            finally:
                if held:
                    conn.execute(_EXCLUSIVE_UNLOCK, params)

    # -- backends ------------------------------------------------------------------------

    @contextmanager
    def _connection(self, statement: Any, params: dict[str, int]) -> Iterator[Connection]:
        """A lock connection with ``statement`` run on it (its result in ``info``). No
        pre-ping (a round trip on every push): a connection the server dropped fails the
        statement, and it is run once more on a fresh one."""
        for attempt in (1, 2):
            try:
                conn = self._lock_engine().connect()
                conn.info["gc_lock_result"] = conn.execute(statement, params).scalar()
            except DBAPIError as exc:
                if attempt == 2 or not exc.connection_invalidated:
                    raise
                continue
            break
        with conn:
            yield conn

    def _lock_engine(self) -> Engine:
        with self._mutex:
            if self._engine is None:
                # AUTOCOMMIT: a held lock is not an open transaction (no idle-in-transaction,
                # no snapshot kept); a broken connection drops its locks with it.
                self._engine = create_engine(
                    self.database.engine.url,
                    isolation_level="AUTOCOMMIT",
                    pool_size=4,
                    max_overflow=256,
                    pool_reset_on_return=None,  # autocommit: nothing to roll back (a round trip)
                )
            return self._engine

    def _lock_dir(self) -> Path:
        with self._mutex:
            if self._dir is None:
                database_file = sqlite_file(self.database.engine.url)
                # In-memory SQLite lives in one process: a private directory serves it.
                self._dir = (
                    Path(database_file + ".locks")
                    if database_file is not None
                    else Path(tempfile.mkdtemp(prefix="moorage-digest-locks-"))
                )
                self._dir.mkdir(parents=True, exist_ok=True)
            return self._dir

    @contextmanager
    def _flock(self, digest: str, operation: int) -> Iterator[bool]:
        bucket = _hash(digest) % SQLITE_LOCK_FILES
        # A descriptor of its own each time: flock conflicts between open files, so two
        # threads of one process exclude each other as two processes do.
        fd = os.open(self._lock_dir() / f"digest-{bucket:03d}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, operation)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
