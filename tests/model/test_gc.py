"""The GC's model queries on SQLite and PostgreSQL: digest locks between threads and between
engines (as between processes), per-namespace windows, temp tags, candidates from blob
deletes, re-checks that keep what changed since it was listed."""

from __future__ import annotations

import threading

from sqlalchemy import Engine

from model.builders import push_blob, push_image
from model.conftest import LOCATIONS, FakeClock
from moorage.db.engine import Database, create_database_engine
from moorage.domain.records import RepositoryReference
from moorage.model.interface.maintenance import GcWindows
from moorage.model.sql import SqlRegistryModel

ZERO = GcWindows(0, 0, 0)
DIGEST = "sha256:" + "ab" * 32


def _second_model(engine: Engine, clock: FakeClock) -> SqlRegistryModel:
    """Another engine on the same database: what another process would hold."""
    return SqlRegistryModel(
        Database(create_database_engine(str(engine.url.render_as_string(hide_password=False)))),
        clock=clock,
        locations=LOCATIONS,
    )


def test_gc_cannot_take_a_digest_a_push_holds(
    model: SqlRegistryModel, engine: Engine, clock: FakeClock
) -> None:
    other = _second_model(engine, clock)
    try:
        with model.holding_blob_digest(DIGEST):
            with other.holding_blob_digest(DIGEST):  # pushers share it
                pass
            with other.gc_try_digest(DIGEST) as held:
                assert held is False
            with model.gc_try_digest(DIGEST) as held:  # another thread of the process too
                assert held is False
            with other.gc_try_digest("sha256:" + "cd" * 32) as held:
                assert held is True  # another digest (another lock file or key) is free
        with other.gc_try_digest(DIGEST) as held:
            assert held is True
            with model.gc_try_digest(DIGEST) as second:
                assert second is False  # two GCs never hold one digest
    finally:
        other.close_digest_locks()
        other.database.close()


def test_a_push_waits_for_a_gc_holding_the_digest(
    model: SqlRegistryModel, engine: Engine, clock: FakeClock
) -> None:
    other = _second_model(engine, clock)
    entered = threading.Event()
    try:
        with other.gc_try_digest(DIGEST) as held:
            assert held

            def push() -> None:
                with model.holding_blob_digest(DIGEST):
                    entered.set()

            pusher = threading.Thread(target=push)
            pusher.start()
            assert not entered.wait(0.5)  # blocked while GC holds it
        assert entered.wait(10)
        pusher.join(10)
    finally:
        other.close_digest_locks()
        other.database.close()


def test_each_namespace_keeps_dead_tags_for_its_own_window(
    model: SqlRegistryModel, clock: FakeClock
) -> None:
    model.create_namespace("brief", removed_tag_expiration_s=60)
    model.create_namespace("long", removed_tag_expiration_s=3600)
    brief = model.create_repository("brief", "app")
    long = model.create_repository("long", "app")
    assert brief is not None and long is not None
    for repo in (brief, long):
        name = repo.namespace_name
        image = push_image(model, repo, [f"layer {name}".encode()], seed=name)
        assert model.retarget_tag(repo, "v1", image.manifest) is not None
        model.delete_tag(repo, "v1")
    clock.advance(61)
    expired = model.gc_expired_tags(ZERO, None, 100)
    assert len(expired) == 1
    freed = model.gc_purge_tags([tag_id for _, tag_id in expired], ZERO, dry_run=False)
    assert freed.tags == 1
    assert model.has_expired_tag(long, "v1") and not model.has_expired_tag(brief, "v1")
    clock.advance(3600)
    assert len(model.gc_expired_tags(ZERO, None, 100)) == 1


def test_temp_tags_go_after_their_grace_not_the_window(
    model: SqlRegistryModel, repo: RepositoryReference, clock: FakeClock
) -> None:
    image = push_image(model, repo, [b"by digest"])
    with model.database.write() as conn:
        model.add_temp_tag(conn, repo.id, image.manifest.id, clock.now, 10)
    grace = GcWindows(0, 0, tag_grace_ms=30_000)
    clock.advance(20)
    assert model.gc_expired_tags(grace, None, 10) == []
    clock.advance(21)
    assert len(model.gc_expired_tags(grace, None, 10)) == 1


def test_a_tag_revived_after_it_was_listed_is_not_purged(
    model: SqlRegistryModel, repo: RepositoryReference, clock: FakeClock
) -> None:
    image = push_image(model, repo, [b"revived"])
    tag = model.retarget_tag(repo, "v1", image.manifest)
    assert tag is not None
    model.delete_tag(repo, "v1")
    clock.advance(model.default_removed_tag_expiration_s + 1)
    listed = model.gc_expired_tags(ZERO, None, 10)
    assert len(listed) == 1
    assert model.list_repository_tag_history(repo)[0] == []  # outside the window
    from sqlalchemy import update

    from moorage.db import tables as t

    with model.database.write() as conn:  # an expiry change that moved the end forward
        conn.execute(
            update(t.tag).where(t.tag.c.id == tag.id).values(lifetime_end_ms=clock.now + 10_000)
        )
    assert model.gc_purge_tags([tag_id for _, tag_id in listed], ZERO, dry_run=False).tags == 0


def test_a_blob_delete_makes_the_blob_a_candidate(
    model: SqlRegistryModel, repo: RepositoryReference, clock: FakeClock
) -> None:
    blob = push_blob(model, repo, b"deleted through the API")
    assert model.gc_candidates("blob", 10) == []
    assert model.remove_blob_links(repo, blob)
    assert model.gc_candidates("blob", 10) == [blob.id]
    clock.advance(1)
    objects = model.gc_collect_blob(blob.id, ZERO)
    assert objects is not None and [o.location_name for o in objects] == ["local"]
    assert model.gc_candidates("blob", 10) == []
    assert model.gc_queue_sizes()["pending_objects"] == 1
    model.gc_forget_objects([o.id for o in objects])
    assert model.gc_queue_sizes() == {
        "manifest": 0,
        "legacy_image": 0,
        "blob": 0,
        "pending_objects": 0,
    }


def test_a_young_blob_is_postponed_not_dropped(
    model: SqlRegistryModel, repo: RepositoryReference, clock: FakeClock
) -> None:
    blob = push_blob(model, repo, b"young")
    assert model.remove_blob_links(repo, blob)
    grace = GcWindows(blob_grace_ms=60_000, manifest_grace_ms=0, tag_grace_ms=0)
    assert model.gc_collect_blob(blob.id, grace) is None
    assert model.gc_candidates("blob", 10) == []  # not due until the grace ends
    clock.advance(61)
    assert model.gc_candidates("blob", 10) == [blob.id]
    assert model.gc_collect_blob(blob.id, grace) is not None


def test_a_dry_run_collect_writes_nothing(
    model: SqlRegistryModel, repo: RepositoryReference, clock: FakeClock
) -> None:
    from moorage.model.interface.maintenance import GcGone

    blob = push_blob(model, repo, b"dry")
    assert model.remove_blob_links(repo, blob)
    clock.advance(1)
    assert model.gc_collect_blob(blob.id, ZERO, GcGone()) is not None
    assert model.lookup_blob(blob.digest or "") is not None
    assert model.gc_candidates("blob", 10) == [blob.id]
    assert model.gc_queue_sizes()["pending_objects"] == 0


def test_a_manifest_delete_waits_for_a_gc_checking_its_legacy_image(
    model: SqlRegistryModel, engine: Engine, repo: RepositoryReference, clock: FakeClock
) -> None:
    """Two GC workers: one checks a legacy image (and sees the manifest that holds it), the
    other deletes that manifest and makes the image a candidate again. The image must stay
    a candidate whichever commits first; it used to be dropped for good (the soak's leak)."""
    from sqlalchemy import delete, select

    from moorage.db import tables as t

    if engine.dialect.name != "postgresql":
        return  # one writer at a time on SQLite: the interleaving cannot happen there
    image = push_image(model, repo, [b"held by the manifest"])
    assert model.retarget_tag(repo, "v1", image.manifest) is not None
    model.delete_tag(repo, "v1")
    clock.advance(model.default_removed_tag_expiration_s + 1)
    assert model.gc_purge_tags(
        [tag_id for _, tag_id in model.gc_expired_tags(ZERO, None, 10)], ZERO, dry_run=False
    ).tags
    with model.database.read() as conn:
        images = list(
            conn.execute(
                select(t.manifest_legacy_image.c.legacy_image_id).where(
                    t.manifest_legacy_image.c.manifest_id == image.manifest.id
                )
            ).scalars()
        )
    assert images
    done = threading.Event()
    checker = engine.connect()
    try:
        with checker.begin():
            # The other GC has locked the image and seen the manifest still holding it ...
            locked = checker.execute(
                select(t.legacy_image.c.id)
                .where(t.legacy_image.c.id == images[0])
                .with_for_update(skip_locked=True)
            ).all()
            assert locked
            collector = threading.Thread(
                target=lambda: (model.gc_collect_manifest(image.manifest.id, ZERO), done.set())
            )
            collector.start()
            assert not done.wait(0.5)  # the manifest's delete waits for that check
            # ... and drops the candidate, as a held image's check does.
            checker.execute(
                delete(t.gc_candidate).where(
                    t.gc_candidate.c.kind == "legacy_image",
                    t.gc_candidate.c.target_id == images[0],
                )
            )
        assert done.wait(10)
        collector.join(10)
    finally:
        checker.close()
    assert images[0] in model.gc_candidates("legacy_image", 100)
    assert model.gc_collect_legacy_image(images[-1], ZERO).deleted
