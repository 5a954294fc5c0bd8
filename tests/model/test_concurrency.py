"""Concurrency in the model: of simultaneous tag movers exactly one wins and history stays
whole; rows created on first use are created once however many writers race."""

from __future__ import annotations

import itertools
import json
import multiprocessing
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import pytest
from sqlalchemy import Engine, Table, create_engine, func, select, text
from tests.model.builders import LAYER_TYPE, digest_of, push_blob, push_image
from tests.model.conftest import LOCATIONS, FakeClock

from moorage.db import tables as t
from moorage.db.engine import Database, create_database_engine, normalize_url
from moorage.domain.errors import DataModelError
from moorage.domain.manifests import Descriptor, legacy_chain_from_config
from moorage.domain.media_types import DOCKER_SCHEMA2_CONFIG, DOCKER_SCHEMA2_MANIFEST
from moorage.domain.records import Blob, DerivedImage, Manifest, RepositoryReference, Tag
from moorage.model.sql import SqlRegistryModel
from moorage.services.repositories import RepositoryResolver

T = TypeVar("T")


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


# -- creation on first use is insert-or-get (issue 11, item 7) ----------------------------
#
# Every racer is a model of its own (own engine, connections and location cache), as the
# worker processes of a server are; a barrier releases them together, and each race runs
# again on fresh names a bounded number of times.

RACERS = 8
ROUNDS = 4


def _race(models: list[SqlRegistryModel], work: Callable[[int, SqlRegistryModel], T]) -> list[T]:
    """``work(index, model)`` on every model at once: every racer's result, or the first
    error one raised (a 500 in a server)."""
    barrier = threading.Barrier(len(models))
    results: list[Any] = [None] * len(models)
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[index] = work(index, models[index])
        except BaseException as error:  # re-raised in the test's thread below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(models))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a racer hung"
    if errors:
        raise errors[0]
    return results


def _rounds(play: Callable[[int], None]) -> None:
    for round_ in range(ROUNDS):
        play(round_)


@pytest.fixture
def racers(database_url: str, engine: Engine, clock: FakeClock) -> Iterator[list[SqlRegistryModel]]:
    models = []
    for _ in range(RACERS):
        database = Database(create_database_engine(database_url))
        database.ping()  # connected before any race starts
        models.append(SqlRegistryModel(database, clock=clock, locations=LOCATIONS))
    yield models
    for model in models:
        model.database.close()


def _count(engine: Engine, table: Table, *where: Any) -> int:
    with engine.connect() as conn:
        query = select(func.count()).select_from(table).where(*where)
        return int(conn.execute(query).scalar_one())


def test_racing_first_pushes_create_one_namespace_and_repository(
    racers: list[SqlRegistryModel], engine: Engine
) -> None:
    """What every push into a new repository does first (``for_write``, namespace
    included): every racer gets the same repository, created once."""

    def play(round_: int) -> None:
        name = f"race{round_}/repo"
        found = _race(racers, lambda _, model: RepositoryResolver(model).for_write(name))
        assert {repository.id for repository in found} == {found[0].id}
        assert _count(engine, t.namespace, t.namespace.c.name == f"race{round_}") == 1
        assert _count(engine, t.repository, t.repository.c.namespace_id.is_not(None)) == round_ + 1

    _rounds(play)


def test_racing_creators_of_a_namespace_one_creates_the_others_are_told_it_exists(
    racers: list[SqlRegistryModel],
) -> None:
    def play(round_: int) -> None:
        name = f"ns{round_}"

        def create(_: int, model: SqlRegistryModel) -> str:
            try:
                return model.create_namespace(name).uuid
            except DataModelError as error:
                assert "already exists" in str(error)
                return ""

        created = [made for made in _race(racers, create) if made]
        assert len(created) == 1
        namespace = racers[0].get_namespace(name)
        assert namespace is not None and namespace.uuid == created[0]

    _rounds(play)


def test_racing_creators_of_a_repository_all_get_the_one_row(
    racers: list[SqlRegistryModel], engine: Engine
) -> None:
    racers[0].create_namespace("devtable")

    def play(round_: int) -> None:
        found = _race(racers, lambda _, model: model.create_repository("devtable", f"r{round_}"))
        ids = {repository.id if repository else None for repository in found}
        assert len(ids) == 1 and None not in ids
        assert _count(engine, t.repository, t.repository.c.name == f"r{round_}") == 1

    _rounds(play)


def test_racing_uploads_at_a_new_location_create_its_row_once(
    racers: list[SqlRegistryModel], engine: Engine, repo: RepositoryReference
) -> None:
    """The first session at a location creates the location's row (each racer's cache is
    empty, as a freshly started worker's)."""
    sessions = _race(
        racers, lambda _, model: model.create_blob_upload(repo, str(uuid.uuid4()), "remote", {})
    )
    assert None not in sessions
    assert _count(engine, t.storage_location, t.storage_location.c.name == "remote") == 1


def test_racing_commits_of_one_digest_make_one_blob_with_one_placement(
    racers: list[SqlRegistryModel], engine: Engine, repo: RepositoryReference
) -> None:
    def play(round_: int) -> None:
        data = f"layer {round_}".encode()
        sessions = []
        for racer in racers:
            session = racer.create_blob_upload(repo, str(uuid.uuid4()), "local", {})
            assert session is not None
            session = racer.update_blob_upload(session, None, None, None, {}, len(data), 1, None)
            assert session is not None
            sessions.append(session)
        blobs = _race(
            racers,
            lambda index, model: model.commit_blob_upload(sessions[index], digest_of(data), 3600),
        )
        ids = {blob.id if blob else None for blob in blobs}
        assert len(ids) == 1 and None not in ids
        assert _count(engine, t.blob, t.blob.c.digest == digest_of(data)) == 1
        assert _count(engine, t.blob_placement, t.blob_placement.c.blob_id.in_(ids)) == 1

    _rounds(play)


def test_racing_placements_and_torrent_info_are_recorded_once(
    racers: list[SqlRegistryModel], engine: Engine, repo: RepositoryReference
) -> None:
    blob = push_blob(racers[0], repo, b"placed twice")
    _race(racers, lambda _, model: model.add_blob_placement(blob, "remote"))
    assert _count(engine, t.blob_placement, t.blob_placement.c.blob_id == blob.id) == 2
    infos = _race(
        racers, lambda index, model: model.set_torrent_info(blob, 4096, bytes([index]) * 20)
    )
    assert len(set(infos)) == 1  # the first write wins, and every racer is told which
    assert _count(engine, t.torrent_info, t.torrent_info.c.blob_id == blob.id) == 1


def test_racing_pushes_of_one_manifest_store_it_once(
    racers: list[SqlRegistryModel], repo: RepositoryReference
) -> None:
    def play(round_: int) -> None:
        image = push_image(racers[0], repo, [f"m{round_}".encode()], seed=f"once{round_}")
        body, media_type = image.manifest.internal_manifest_bytes, image.manifest.media_type
        chain = legacy_chain_from_config(image.config, _descriptors(body))
        stored = _race(
            racers,
            lambda _, model: model.create_manifest(repo, body, media_type, legacy_chain=chain),
        )
        assert {manifest.id for manifest in stored} == {image.manifest.id}

    _rounds(play)


def test_racing_pushes_of_images_on_one_base_share_its_legacy_images(
    racers: list[SqlRegistryModel], engine: Engine, repo: RepositoryReference
) -> None:
    """Images built on one base have the same V1 id for the base layer: the first push of
    each into a repository makes the base's legacy image, so they race on its row."""

    def play(round_: int) -> None:
        base = push_blob(racers[0], repo, f"base {round_}".encode())
        images = []
        for index in range(len(racers)):
            top = push_blob(racers[0], repo, f"top {round_} {index}".encode())
            config = _config_on_base(f"{round_}-{index}")
            push_blob(racers[0], repo, config)
            images.append((_manifest_body(config, [base, top]), config))

        def push(index: int, model: SqlRegistryModel) -> Manifest:
            body, config = images[index]
            chain = legacy_chain_from_config(config, _descriptors(body))
            return model.create_manifest(repo, body, DOCKER_SCHEMA2_MANIFEST, legacy_chain=chain)

        stored = _race(racers, push)
        assert len({manifest.id for manifest in stored}) == len(racers)
        base_images = _count(
            engine,
            t.legacy_image,
            t.legacy_image.c.repository_id == repo.id,
            t.legacy_image.c.blob_id == base.id,
        )
        assert base_images == 1
        for manifest in stored:
            layers = racers[0].list_manifest_layers(manifest)
            assert layers is not None and layers[0].layer_info.layer_id is not None

    _rounds(play)


def test_racing_v1_pushes_of_chains_on_one_base_share_its_legacy_image(
    racers: list[SqlRegistryModel], engine: Engine, repo: RepositoryReference
) -> None:
    """The same race through ``create_legacy_images`` (a V1 push), which no caller
    retries."""

    def play(round_: int) -> None:
        base = push_blob(racers[0], repo, f"v1 base {round_}".encode())
        chains = []
        for index in range(len(racers)):
            config = _config_on_base(f"v1-{round_}-{index}")
            top = push_blob(racers[0], repo, f"v1 top {round_} {index}".encode())
            chains.append(
                legacy_chain_from_config(config, _descriptors(_manifest_body(config, [base, top])))
            )
        leaves = _race(racers, lambda index, model: model.create_legacy_images(repo, chains[index]))
        assert len({leaf.id for leaf in leaves}) == len(racers)
        assert {leaf.parents[0].docker_image_id for leaf in leaves} == {chains[0][0].id}
        base_images = _count(
            engine,
            t.legacy_image,
            t.legacy_image.c.repository_id == repo.id,
            t.legacy_image.c.blob_id == base.id,
        )
        assert base_images == 1

    _rounds(play)


def test_racing_pushes_of_one_image_by_tag_and_by_digest_all_land(
    racers: list[SqlRegistryModel], repo: RepositoryReference
) -> None:
    """Half the racers push the image by tag (their transaction takes the repository lock
    before anything else), half by digest (a temp tag, no lock first): no order of locks
    may deadlock them (PostgreSQL would abort one: a 500)."""

    def play(round_: int) -> None:
        layers = [push_blob(racers[0], repo, f"both ways {round_} {i}".encode()) for i in (0, 1)]
        config = _config_on_base(f"bw-{round_}")
        push_blob(racers[0], repo, config)
        body = _manifest_body(config, layers)
        chain = legacy_chain_from_config(config, _descriptors(body))

        def push(index: int, model: SqlRegistryModel) -> Manifest:
            if index % 2:
                return model.create_manifest(
                    repo, body, DOCKER_SCHEMA2_MANIFEST, legacy_chain=chain, tags=(f"t{index}",)
                )
            return model.create_manifest(
                repo, body, DOCKER_SCHEMA2_MANIFEST, legacy_chain=chain, temp_tag_expiration_s=60
            )

        stored = _race(racers, push)
        assert len({manifest.id for manifest in stored}) == 1
        for index in range(1, len(racers), 2):
            tag = racers[0].get_repo_tag(repo, f"t{index}")
            assert tag is not None and tag.manifest_id == stored[0].id

    _rounds(play)


def _descriptors(body: bytes) -> list[Descriptor]:
    layers = json.loads(body)["layers"]
    return [Descriptor(d["mediaType"], d["digest"], d["size"]) for d in layers]


def _config_on_base(top: str) -> bytes:
    history = [
        {"created": "2026-01-01T00:00:00Z", "created_by": "/bin/sh -c #(nop) ADD base"},
        {"created": "2026-01-02T00:00:00Z", "created_by": f"/bin/sh -c build {top}"},
    ]
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{i:064x}" for i in range(2)]},
        "history": history,
    }
    return json.dumps(config).encode()


def _manifest_body(config: bytes, layers: list[Blob]) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_SCHEMA2_MANIFEST,
            "config": {
                "mediaType": DOCKER_SCHEMA2_CONFIG,
                "digest": digest_of(config),
                "size": len(config),
            },
            "layers": [
                {"mediaType": LAYER_TYPE, "digest": blob.digest, "size": blob.compressed_size}
                for blob in layers
            ],
        }
    ).encode()


def test_racing_creators_of_a_derived_image_get_the_one_image(
    racers: list[SqlRegistryModel], engine: Engine, repo: RepositoryReference
) -> None:
    manifest = push_image(racers[0], repo, [b"derived source"], seed="derived").manifest
    made: list[DerivedImage] = []

    def play(round_: int) -> None:
        derived = _race(
            racers,
            lambda _, model: model.lookup_or_create_derived_image(
                manifest, "squash", "local", varying_metadata={"round": round_}
            ),
        )
        assert None not in derived
        assert len({(image.id, image.blob.id) for image in derived if image}) == 1
        made.append(derived[0])  # type: ignore[arg-type]

    _rounds(play)
    # The racers that lost left no storage row behind.
    assert _count(engine, t.blob, t.blob.c.content_addressed.is_(False)) == ROUNDS
    assert _count(engine, t.derived_image) == ROUNDS
    image = made[0]
    _race(racers, lambda _, model: model.set_derived_image_signature(image, "gpg2", "sig"))
    assert _count(engine, t.blob_signature, t.blob_signature.c.blob_id == image.blob.id) == 1


def test_racing_workers_agree_on_one_schema1_signing_key(
    racers: list[SqlRegistryModel], engine: Engine
) -> None:
    keys = _race(racers, lambda _, model: model.schema1_signer().to_pem())
    assert len(set(keys)) == 1
    assert _count(engine, t.registry_secret) == 1


def test_racing_mounts_into_a_new_repository_all_land(
    racers: list[SqlRegistryModel], repo: RepositoryReference
) -> None:
    """A cross-repository mount into a repository that does not exist yet: the target is
    created on the way, once, and every racer's mount links the blob."""
    blob = push_blob(racers[0], repo, b"mounted layer")
    digest = digest_of(b"mounted layer")

    def play(round_: int) -> None:
        def mount(_: int, model: SqlRegistryModel) -> int:
            target = RepositoryResolver(model).for_write(f"mounts/target{round_}")
            assert model.mount_blob_into_repository(blob, target, 3600)
            return target.id

        assert len(set(_race(racers, mount))) == 1
        target = racers[0].lookup_repository("mounts", f"target{round_}")
        assert target is not None
        assert racers[0].get_repo_blob_by_digest(target, digest) is not None

    _rounds(play)
