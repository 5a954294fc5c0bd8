"""Concurrent tag movers: exactly one of two simultaneous movers wins, history stays whole."""

from __future__ import annotations

import itertools
import multiprocessing
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine, text
from tests.model.builders import push_image

from moorage.db.engine import Database, create_database_engine, normalize_url
from moorage.domain.records import Manifest, RepositoryReference, Tag
from moorage.model.sql import SqlRegistryModel


@contextmanager
def writer_holding_the_lock(engine: Engine, repository_id: int) -> Iterator[None]:
    """Another client in the middle of a write: tag writers must queue behind it."""
    if engine.dialect.name == "sqlite":
        conn = sqlite3.connect(str(engine.url.database), isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    other = create_engine(normalize_url(engine.url.render_as_string(hide_password=False)))
    with other.connect() as pg:
        transaction = pg.begin()
        pg.execute(
            text("SELECT id FROM repository WHERE id = :id FOR UPDATE"), {"id": repository_id}
        )
        try:
            yield
        finally:
            transaction.rollback()
    other.dispose()


def _move_at_once(
    model: SqlRegistryModel, repo: RepositoryReference, targets: list[Manifest]
) -> list[Tag | None]:
    results: list[Tag | None] = [None] * len(targets)

    def move(index: int) -> None:
        results[index] = model.retarget_tag(repo, "latest", targets[index])

    threads = [threading.Thread(target=move, args=(i,)) for i in range(len(targets))]
    engine = model.database.engine
    with writer_holding_the_lock(engine, repo.id):
        for thread in threads:
            thread.start()
        _wait_until_movers_queue(engine, len(threads))
    for thread in threads:
        thread.join(timeout=60)
    return results


def _wait_until_movers_queue(engine: Engine, movers: int) -> None:
    """Both movers have read the tag and now wait for the write lock."""
    if engine.dialect.name != "postgresql":
        time.sleep(1.5)  # SQLite cannot show who waits on its lock
        return
    deadline = time.monotonic() + 30
    with engine.connect() as conn:
        while time.monotonic() < deadline:
            waiting = conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE wait_event_type = 'Lock' AND datname = current_database()"
                )
            ).scalar_one()
            conn.rollback()
            if waiting >= movers:
                return
            time.sleep(0.05)
    raise AssertionError("the movers never queued behind the lock")


def _assert_history_consistent(
    model: SqlRegistryModel, repo: RepositoryReference, expected_versions: int
) -> None:
    history, _ = model.list_repository_tag_history(repo, size=1000, specific_tag_name="latest")
    assert len(history) == expected_versions
    ordered = sorted(history, key=lambda t: (t.lifetime_start_ms, t.id))
    alive = [t for t in ordered if t.lifetime_end_ms is None]
    assert len(alive) == 1 and alive[0] == ordered[-1]
    for older, newer in itertools.pairwise(ordered):
        assert older.lifetime_end_ms == newer.lifetime_start_ms  # no gap, no overlap


def test_two_simultaneous_movers_exactly_one_wins(
    model: SqlRegistryModel, repo: RepositoryReference
) -> None:
    base = push_image(model, repo, [b"base"], seed="base").manifest
    model.retarget_tag(repo, "latest", base)
    one = push_image(model, repo, [b"one"], seed="1").manifest
    two = push_image(model, repo, [b"two"], seed="2").manifest
    results = _move_at_once(model, repo, [one, two])
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    current = model.get_repo_tag(repo, "latest")
    assert current is not None and current.manifest_digest == winners[0].manifest_digest
    _assert_history_consistent(model, repo, expected_versions=2)


def test_two_simultaneous_creators_exactly_one_wins(
    model: SqlRegistryModel, repo: RepositoryReference
) -> None:
    one = push_image(model, repo, [b"one"], seed="1").manifest
    two = push_image(model, repo, [b"two"], seed="2").manifest
    results = _move_at_once(model, repo, [one, two])
    assert len([r for r in results if r is not None]) == 1
    _assert_history_consistent(model, repo, expected_versions=1)


def _mover(
    url: str, repo_id: int, digests: list[str], rounds: int, queue: multiprocessing.Queue
) -> None:  # type: ignore[type-arg]
    engine = create_database_engine(url)
    model = SqlRegistryModel(Database(engine))
    repo = model.lookup_repository("devtable", "simple")
    assert repo is not None and repo.id == repo_id
    manifests = [model.lookup_manifest_by_digest(repo, d, allow_dead=True) for d in digests]
    wins = 0
    for index in range(rounds):
        target = manifests[index % len(manifests)]
        assert target is not None
        if model.retarget_tag(repo, "latest", target) is not None:
            wins += 1
    engine.dispose()
    queue.put(wins)


def test_processes_racing_on_one_tag_keep_history_whole(
    model: SqlRegistryModel, repo: RepositoryReference, database_url: str
) -> None:
    manifests = [
        push_image(model, repo, [f"m{i}".encode()], seed=str(i)).manifest for i in range(3)
    ]
    model.retarget_tag(repo, "latest", manifests[0])
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    rounds = 25
    workers = [
        context.Process(
            target=_mover,
            args=(database_url, repo.id, [m.digest for m in manifests], rounds, queue),
        )
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    wins = [queue.get(timeout=5) for _ in workers]
    assert 1 <= sum(wins) <= 2 * rounds
    _assert_history_consistent(model, repo, expected_versions=1 + sum(wins))
