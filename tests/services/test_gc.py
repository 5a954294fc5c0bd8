"""GC phase by phase over the real model (SQLite, PostgreSQL), services and storage
(filesystem; S3 in test_gc_s3.py): each phase collects exactly the garbage and keeps
everything referenced; a dry run changes nothing; an interrupted cycle is finished by the
next; once everything is deleted and the windows passed, rows and bytes are at baseline."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from moorage.domain.errors import BlobNotFoundError, ManifestNotFoundError
from moorage.model.interface.maintenance import GcWindows
from moorage.storage import create_driver
from support.gc_world import (
    LINK_S,
    TEMP_TAG_S,
    WINDOW_S,
    World,
    open_world,
    sha256,
    snapshot,
)


@pytest.fixture(params=["sqlite", "postgres"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    url = (
        f"sqlite:///{tmp_path}/gc.db"
        if request.param == "sqlite"
        else request.getfixturevalue("fresh_postgres_url")
    )
    drivers = {
        "local": create_driver("filesystem", root=tmp_path / "local"),
        "remote": create_driver("filesystem", root=tmp_path / "remote"),
    }
    with open_world(url, drivers) as opened:
        yield opened


def baseline(world: World) -> dict[str, int]:
    """Counts with one empty repository: what everything returns to."""
    return world.counts()


def test_a_cycle_with_nothing_to_collect_deletes_nothing(world: World) -> None:
    repo = world.repository("acme/app")
    _manifest, blobs = world.image(repo, "v1", [b"layer one", b"layer two"])
    world.pass_windows()  # links expire: the manifest still holds every blob
    report = world.gc()
    assert (report.manifests, report.blobs, report.tags, report.bytes) == (0, 0, 0, 0)
    assert report.links == 3  # expired links are garbage themselves
    assert sorted(world.pull(repo, "v1")) == sorted(blobs)
    assert world.stored_blob_digests() == set(blobs)
    again = world.gc()
    assert (again.links, again.blobs, again.manifests) == (0, 0, 0)


def test_a_deleted_tag_stays_restorable_for_the_window_then_everything_goes(
    world: World,
) -> None:
    repo = world.repository("acme/app")
    empty = baseline(world)
    manifest, blobs = world.image(repo, "v1", [b"only layer"])
    world.services.manifests.delete(repo, "v1")
    world.clock.advance(WINDOW_S / 2)
    assert world.gc().manifests == 0
    world.tags.restore(repo, "v1", manifest)  # inside the window: restorable
    assert sorted(world.pull(repo, "v1")) == sorted(blobs)
    world.services.manifests.delete(repo, "v1")
    world.clock.advance(WINDOW_S / 2 + 1)
    assert world.gc().manifests == 0  # the restore started a new window
    world.pass_windows()
    report = world.gc()
    # The first version left the window at the cycle before; the restored one now.
    assert (report.tags, report.manifests, report.blobs) == (1, 1, 2)
    config_size = len(b'{"architecture": "amd64", "os": "linux", "seed": ""}')
    assert report.bytes == config_size + len(b"only layer")
    assert report.bytes_by_location == {"local": report.bytes}
    assert world.counts() == empty
    assert world.stored_blob_digests() == set()


def test_a_v2_delete_by_digest_is_revived_by_a_restore_inside_the_window(world: World) -> None:
    repo = world.repository("acme/app")
    manifest, blobs = world.image(repo, "v1", [b"revived layer"])
    world.services.manifests.delete(repo, manifest)  # ends the tag, marks it deleted
    world.clock.advance(WINDOW_S - 60)
    report = world.gc()
    assert (report.manifests, report.blobs) == (0, 0)
    world.tags.restore(repo, "v1", manifest)
    world.pass_windows()
    world.gc()
    assert sorted(world.pull(repo, "v1")) == sorted(blobs)


def test_index_children_live_as_long_as_the_index(world: World) -> None:
    repo = world.repository("acme/multi")
    empty = baseline(world)
    amd, amd_blobs = world.image(repo, None, [b"amd64 layer"], seed="amd")
    arm, arm_blobs = world.image(repo, None, [b"arm64 layer"], seed="arm")
    world.index(repo, "latest", [amd, arm])
    world.pass_windows()  # the children's temp tags and links are long gone
    report = world.gc()
    assert (report.manifests, report.blobs) == (0, 0)
    assert sorted(world.pull(repo, "latest")) == sorted(amd_blobs + arm_blobs)
    world.services.manifests.delete(repo, "latest")
    world.pass_windows()
    report = world.gc()
    assert report.manifests == 3
    assert report.blobs == 4
    assert world.counts() == empty
    assert world.stored_blob_digests() == set()


def test_a_manifest_pushed_by_digest_stays_while_its_temp_tag_lives(world: World) -> None:
    repo = world.repository("acme/app")
    manifest, blobs = world.image(repo, None, [b"untagged layer"])
    world.clock.advance(TEMP_TAG_S - 10)
    assert world.gc().manifests == 0
    world.index(repo, "late", [manifest])  # the index arrives in time: the child stays
    world.pass_windows()
    assert world.gc().manifests == 0
    assert sorted(world.pull(repo, "late")) == sorted(blobs)
    lonely, _ = world.image(repo, None, [b"never indexed"], seed="lonely")
    world.pass_windows()
    assert world.gc().manifests == 1
    assert world.model.lookup_manifest_by_digest(repo, lonely, allow_dead=True) is None


def test_a_referrer_lives_as_long_as_its_subject(world: World) -> None:
    repo = world.repository("acme/signed")
    empty = baseline(world)
    subject, _ = world.image(repo, "v1", [b"signed layer"])
    sbom = world.referrer(repo, subject)
    world.pass_windows()
    report = world.gc()
    assert report.manifests == 0
    assert [m.digest for m in world.model.list_referrers(repo, subject)] == [sbom]
    world.pull(repo, sbom)
    world.services.manifests.delete(repo, "v1")
    world.pass_windows()
    report = world.gc()
    assert report.manifests == 2
    assert world.counts() == empty
    assert world.stored_blob_digests() == set()


def test_an_uploaded_blob_stays_while_its_link_lives(world: World) -> None:
    repo = world.repository("acme/app")
    empty = baseline(world)
    digest = world.blob(repo, b"uploaded, not yet in a manifest")
    world.clock.advance(LINK_S - 5)
    assert world.gc().blobs == 0
    world.pull_blob(repo, digest)
    world.clock.advance(10)
    windows = GcWindows(blob_grace_ms=60_000, manifest_grace_ms=0, tag_grace_ms=0)
    assert world.gc(windows).blobs == 0  # expired, but within the grace
    world.clock.advance(61)
    report = world.gc(windows)
    assert (report.links, report.blobs, report.objects) == (1, 1, 1)
    with pytest.raises(BlobNotFoundError):
        world.services.blobs.content(repo, digest)
    assert world.counts() == empty
    assert world.stored_blob_digests() == set()


def test_a_blob_deleted_through_the_api_goes_when_no_manifest_holds_it(world: World) -> None:
    repo = world.repository("acme/app")
    digest = world.blob(repo, b"pushed then deleted by DELETE /blobs")
    world.services.blobs.unlink(repo, digest)
    world.clock.advance(1)  # the model's clock, not the wall's, decides a blob's age
    assert world.gc().blobs == 1
    assert world.stored_blob_digests() == set()


def test_a_layer_shared_with_another_repository_stays(world: World) -> None:
    first, second = world.repository("acme/one"), world.repository("acme/two")
    shared = b"shared base layer"
    _, _one_blobs = world.image(first, "v1", [shared, b"one's own"], seed="one")
    _, two_blobs = world.image(second, "v1", [shared, b"two's own"], seed="two")
    world.services.manifests.delete(first, "v1")
    world.pass_windows()
    report = world.gc()
    assert report.manifests == 1
    assert report.blobs == 2  # one's config and own layer; the shared one stays
    assert sorted(world.pull(second, "v1")) == sorted(two_blobs)
    assert sha256(shared) in world.stored_blob_digests()


def test_a_mount_keeps_the_blob_in_the_target(world: World) -> None:
    source, target = world.repository("acme/source"), world.repository("acme/target")
    digest = world.blob(source, b"mounted layer")
    world.clock.advance(LINK_S - 100)
    assert world.services.blobs.mount(target, digest, source) is not None
    world.clock.advance(200)  # the source's link expired, the target's lives
    assert world.gc().blobs == 0
    world.pull_blob(target, digest)
    world.clock.advance(LINK_S)
    assert world.gc().blobs == 1


def test_open_uploads_stay_until_their_age_then_go_with_their_data(world: World) -> None:
    repo = world.repository("acme/app")
    progress = world.services.uploads.start(repo)
    world.services.uploads.append(repo, progress.upload_id, [b"half a layer"])
    assert world.gc().uploads == 0
    assert world.services.uploads.status(repo, progress.upload_id).size == 12
    report = world.collector(upload_max_age=timedelta(0)).run_once()
    assert report.uploads == 1
    assert list(world.locations.drivers["local"].list_uploads()) == []


def test_a_repository_marked_for_deletion_is_collected_whole(world: World) -> None:
    keep = world.repository("acme/keep")
    empty = world.counts()
    doomed = world.repository("acme/doomed")
    _, kept_blobs = world.image(keep, "v1", [b"kept layer"], seed="keep")
    manifest, _ = world.image(doomed, "v1", [b"doomed layer"], seed="doomed")
    world.index(doomed, "multi", [manifest])
    world.blob(doomed, b"dangling upload")
    session = world.services.uploads.start(doomed)
    world.services.uploads.append(doomed, session.upload_id, [b"partial"])
    assert world.model.mark_repository_deleted(doomed)
    world.clock.advance(1)
    dry = world.gc(dry_run=True)
    assert dry.repositories == 1
    report = world.gc()
    assert report.repositories == 1
    assert report.manifests == 2
    assert report.blobs == 3  # config, layer, the dangling upload
    assert report.uploads == 1
    assert (dry.manifests, dry.blobs, dry.bytes) == (report.manifests, report.blobs, report.bytes)
    assert world.counts()["repository"] == empty["repository"]
    assert sorted(world.pull(keep, "v1")) == sorted(kept_blobs)
    assert world.stored_blob_digests() == set(kept_blobs)
    assert list(world.locations.drivers["local"].list_uploads()) == []


def test_a_dry_run_changes_nothing_and_predicts_the_real_run(world: World) -> None:
    repo = world.repository("acme/app")
    amd, _ = world.image(repo, None, [b"amd layer", b"shared"], seed="amd")
    arm, _ = world.image(repo, None, [b"arm layer", b"shared"], seed="arm")
    index = world.index(repo, "latest", [amd, arm])
    world.referrer(repo, index, seed="sig")
    world.image(repo, "stays", [b"shared", b"kept"], seed="kept")
    world.blob(repo, b"just uploaded")
    world.services.manifests.delete(repo, "latest")
    world.pass_windows()
    before = snapshot(world)
    dry = world.gc(dry_run=True)
    assert snapshot(world) == before
    assert dry.dry_run and dry.manifests == 4 and dry.blobs == 7
    real = world.gc()
    fields = ("tags", "manifests", "blobs", "bytes", "bytes_by_location", "blobs_by_location")
    assert {f: getattr(dry, f) for f in fields} == {f: getattr(real, f) for f in fields}
    world.pull(repo, "stays")


def test_a_cycle_interrupted_after_the_row_delete_is_finished_by_the_next(world: World) -> None:
    repo = world.repository("acme/app")
    digest = world.blob(repo, b"collected halfway")
    world.pass_windows()
    world.model.gc_expired_links(world.collector().settings.windows, 100, dry_run=False)
    (blob_id,) = world.model.gc_candidates("blob", 10)
    # What a GC killed between its transaction and the storage delete leaves:
    objects = world.model.gc_collect_blob(blob_id, world.collector().settings.windows)
    assert objects is not None and len(objects) == 1
    assert world.stored_blob_digests() == {digest}
    assert world.model.gc_queue_sizes()["pending_objects"] == 1
    report = world.gc()
    assert report.objects == 1
    assert world.stored_blob_digests() == set()
    assert world.model.gc_queue_sizes()["pending_objects"] == 0


def test_a_leftover_object_pushed_again_since_keeps_its_bytes(world: World) -> None:
    repo = world.repository("acme/app")
    data = b"collected, then pushed again"
    digest = world.blob(repo, data)
    world.pass_windows()
    world.model.gc_expired_links(world.collector().settings.windows, 100, dry_run=False)
    (blob_id,) = world.model.gc_candidates("blob", 10)
    assert world.model.gc_collect_blob(blob_id, world.collector().settings.windows)
    world.locations.drivers["local"].delete(f"blobs/sha256/{digest[7:9]}/{digest[7:]}")
    world.blob(repo, data)  # a push re-creates row and bytes before the next cycle
    report = world.gc()
    assert report.objects == 0
    assert world.pull_blob(repo, digest) == data
    assert world.model.gc_queue_sizes()["pending_objects"] == 0


def test_replicated_blobs_go_from_every_location(world: World) -> None:
    from moorage.services.replication import ReplicationService

    repo = world.repository("acme/app")
    empty = baseline(world)
    _, _blobs = world.image(repo, "v1", [b"replicated layer"])
    ReplicationService(world.model, world.locations).run_once()
    assert all(len(keys) == 2 for keys in world.stored().values())
    world.services.manifests.delete(repo, "v1")
    world.pass_windows()
    report = world.gc()
    assert report.blobs == 2 and report.objects == 4
    assert report.blobs_by_location == {"local": 2, "remote": 2}
    assert world.stored() == {"local": set(), "remote": set()}
    assert world.counts() == empty


def test_small_batches_collect_the_same(world: World) -> None:
    repo = world.repository("acme/app")
    empty = baseline(world)
    for number in range(7):
        world.image(repo, f"t{number}", [f"layer {number}".encode()], seed=str(number))
        world.services.manifests.delete(repo, f"t{number}")
    world.pass_windows()
    report = world.collector(batch=2).run_once()
    assert (report.tags, report.manifests, report.blobs) == (7, 7, 14)
    assert world.counts() == empty


def test_a_pulled_manifest_of_a_deleted_tag_is_gone_after_gc(world: World) -> None:
    repo = world.repository("acme/app")
    manifest, _ = world.image(repo, "v1", [b"gone layer"])
    world.services.manifests.delete(repo, "v1")
    world.pass_windows()
    world.gc()
    with pytest.raises(ManifestNotFoundError):
        world.services.manifests.get(repo, manifest, ("*/*",))


def test_derived_images_and_torrent_info_go_with_what_they_came_from(world: World) -> None:
    from moorage.storage import keys

    repo = world.repository("acme/app")
    empty = baseline(world)
    digest, blobs = world.image(repo, "v1", [b"a layer to squash"])
    manifest = world.model.lookup_manifest_by_digest(repo, digest)
    assert manifest is not None
    derived = world.model.lookup_or_create_derived_image(manifest, "squash", "local")
    assert derived is not None, "the image has a V1 chain to derive from"
    world.locations.drivers["local"].put(keys.derived_key(derived.blob.uuid), [b"squashed"])
    world.model.set_derived_image_size(derived, 8)
    world.model.set_derived_image_signature(derived, "gpg2", "signed")
    layer = world.model.lookup_blob(blobs[1])
    assert layer is not None
    world.model.set_torrent_info(layer, 16384, b"\x00" * 20)
    world.pass_windows()
    assert world.gc().blobs == 0  # the image is tagged: its derived image stays too
    assert world.model.lookup_derived_image(manifest, "squash") is not None
    world.services.manifests.delete(repo, "v1")
    world.pass_windows()
    report = world.gc()
    assert report.blobs == 3  # config, layer, the squashed object
    assert world.counts() == empty  # derived rows, signature, torrent info: all gone
    assert world.stored() == {"local": set(), "remote": set()}


def test_a_no_op_cycle_reads_no_large_table_whole(tmp_path: Path) -> None:
    """Every statement of a cycle with nothing to collect is an index search on SQLite:
    no SCAN of the tables that grow with content (bench/gc_noop.py measures the time)."""
    import re

    from sqlalchemy import event

    drivers = {"local": create_driver("filesystem", root=tmp_path / "local")}
    with open_world(f"sqlite:///{tmp_path}/plan.db", drivers) as world:
        repo = world.repository("acme/app")
        for number in range(3):
            world.image(repo, f"v{number}", [f"layer {number}".encode()], seed=str(number))
        world.services.manifests.delete(repo, "v0")  # a dead tag inside the window
        world.clock.advance(LINK_S - 60)  # links alive: nothing is garbage
        statements: list[tuple[str, object]] = []

        def record(conn: object, cursor: object, sql: str, params: object, *_: object) -> None:
            if sql.lstrip().upper().startswith(("SELECT", "WITH")):
                statements.append((sql, params))

        engine = world.model.database.engine
        event.listen(engine, "before_cursor_execute", record)
        try:
            report = world.gc()
        finally:
            event.remove(engine, "before_cursor_execute", record)
        assert (report.tags, report.manifests, report.blobs, report.links) == (0, 0, 0, 0)
        assert statements
        large = (
            r"SCAN (blob|blob_placement|tag|manifest|manifest_blob|uploaded_blob|legacy_image)\b"
        )
        with engine.connect() as conn:
            for sql, params in statements:
                plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params).all()  # type: ignore[arg-type]
                details = " / ".join(str(row[-1]) for row in plan)
                assert not re.search(large, details), f"{sql}\n  -> {details}"
