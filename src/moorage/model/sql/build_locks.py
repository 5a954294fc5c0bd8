"""Locks that hold across worker processes, so one derived image is built once at a time.

PostgreSQL: a transaction-scoped advisory lock on a connection kept for the build (it ends
with the transaction, also when the process dies). SQLite: an ``flock`` on a file in a
directory next to the database (every process of an SQLite deployment shares its disk);
the kernel drops it with the process too. Neither waits: a lock held elsewhere is
reported, and the caller decides how long to keep asking.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import text

from moorage.db.engine import Database

# The advisory lock's first key: which kind of thing is locked (the second is its id).
DERIVED_IMAGE_LOCK_CLASS = 0x5351  # "SQ"
_TRY_LOCK = text("SELECT pg_try_advisory_xact_lock(:class_id, :object_id)")


class BuildLocks:
    def __init__(self, database: Database, lock_dir: Path) -> None:
        self.database, self.lock_dir = database, lock_dir

    @contextmanager
    def hold(self, derived_image_id: int) -> Iterator[bool]:
        """Yields True holding the lock for ``derived_image_id``, False when another
        holder (any process) has it; released on exit."""
        if self.database.is_sqlite:
            with self._flock(derived_image_id) as held:
                yield held
            return
        with self.database.engine.connect() as conn, conn.begin():
            params = {"class_id": DERIVED_IMAGE_LOCK_CLASS, "object_id": derived_image_id % 2**31}
            yield bool(conn.execute(_TRY_LOCK, params).scalar())

    @contextmanager
    def _flock(self, derived_image_id: int) -> Iterator[bool]:
        self.lock_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_dir / f"{derived_image_id}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)  # closing the descriptor releases the lock
