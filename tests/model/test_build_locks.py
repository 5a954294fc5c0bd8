"""The derived-image build lock holds across processes, on SQLite (flock) and PostgreSQL
(advisory transaction lock): while one process holds it, another is refused at once; it is
free again when the holder leaves or dies."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

from sqlalchemy import Engine

from moorage.db.engine import Database, create_database_engine
from moorage.model.sql.build_locks import BuildLocks


def _hold_then_wait(url: str, lock_dir: str, derived_id: int, held, release) -> None:  # type: ignore[no-untyped-def]
    database = Database(create_database_engine(url))
    with BuildLocks(database, Path(lock_dir)).hold(derived_id) as got:
        held.put(got)
        release.wait(30)
    database.close()


def _die_holding(url: str, lock_dir: str, derived_id: int, held) -> None:  # type: ignore[no-untyped-def]
    import os

    database = Database(create_database_engine(url))
    with BuildLocks(database, Path(lock_dir)).hold(derived_id) as got:
        held.put(got)
        time.sleep(0.2)
        os._exit(1)  # no cleanup: the kernel or the server must drop the lock


def test_one_holder_across_processes(engine: Engine, database_url: str, tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    held, release = context.Queue(), context.Event()
    locks = BuildLocks(Database(engine), tmp_path / "locks")
    holder = context.Process(
        target=_hold_then_wait, args=(database_url, str(tmp_path / "locks"), 7, held, release)
    )
    holder.start()
    try:
        assert held.get(timeout=60) is True
        with locks.hold(7) as got:
            assert got is False  # another process has it: refused, without waiting
        with locks.hold(8) as got:
            assert got is True  # another image's lock is free
    finally:
        release.set()
        holder.join(timeout=30)
    with locks.hold(7) as got:
        assert got is True  # released with its holder's exit


def test_a_dead_holder_leaves_the_lock_free(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    context = multiprocessing.get_context("spawn")
    held = context.Queue()
    dying = context.Process(target=_die_holding, args=(database_url, str(tmp_path / "l"), 9, held))
    dying.start()
    assert held.get(timeout=60) is True
    dying.join(timeout=30)
    locks = BuildLocks(Database(engine), tmp_path / "l")
    deadline = time.monotonic() + 20  # PostgreSQL notices the dropped connection quickly
    while True:
        with locks.hold(9) as got:
            if got or time.monotonic() > deadline:
                break
        time.sleep(0.2)
    assert got is True


def test_the_same_process_is_refused_while_it_holds_the_lock(
    engine: Engine, tmp_path: Path
) -> None:
    """Two threads of one worker must not both build either."""
    locks = BuildLocks(Database(engine), tmp_path / "locks")
    with locks.hold(3) as first:
        assert first is True
        with locks.hold(3) as second:
            assert second is False
    with locks.hold(3) as again:
        assert again is True
