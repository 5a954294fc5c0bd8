"""GC's storage side on S3: SeaweedFS with PostgreSQL, moto with SQLite. Collected blobs'
objects go from the bucket (every placement's location), live ones stay and pull whole,
a push racing GC over a layer loses nothing, and the bucket returns to empty."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from moorage.storage import create_driver
from support.gc_world import LINK_S, World, open_world
from support.s3servers import (  # noqa: F401 (fixtures)
    S3Server,
    moto_s3,
    seaweedfs_s3,
    unique_prefix,
)


@pytest.fixture(params=["postgres-seaweedfs", "sqlite-moto"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[World, S3Server, str]]:
    database, server_name = request.param.split("-")
    url = (
        request.getfixturevalue("fresh_postgres_url")
        if database == "postgres"
        else f"sqlite:///{tmp_path}/gc.db"
    )
    server: S3Server = request.getfixturevalue(f"{server_name}_s3")
    prefix = unique_prefix()
    drivers = {
        "s3": create_driver("s3", **server.driver_options(prefix)),
        "disk": create_driver("filesystem", root=tmp_path / "disk"),
    }
    try:
        with open_world(url, drivers) as opened:
            yield opened, server, prefix
    finally:
        server.clear(prefix)


def _blob_objects(server: S3Server, prefix: str) -> list[str]:
    return [key for key in server.raw_entries(prefix) if key.startswith("blobs/")]


def test_collected_blobs_leave_the_bucket_and_live_ones_stay(
    world: tuple[World, S3Server, str],
) -> None:
    registry, server, prefix = world
    repo = registry.repository("acme/app")
    empty = registry.counts()
    _, kept = registry.image(repo, "keep", [b"kept on s3", b"shared on s3"], seed="keep")
    _, gone = registry.image(repo, "drop", [b"dropped from s3", b"shared on s3"], seed="drop")
    from moorage.services.replication import ReplicationService

    ReplicationService(registry.model, registry.locations).run_once()  # onto disk too
    registry.services.manifests.delete(repo, "drop")
    registry.pass_windows()
    dry = registry.gc(dry_run=True)
    assert dry.blobs_by_location == {"disk": 2, "s3": 2}
    assert len(_blob_objects(server, prefix)) == 5
    report = registry.gc()
    assert report.blobs == 2 and report.objects == 4
    assert report.bytes_by_location == dry.bytes_by_location
    assert sorted(registry.pull(repo, "keep")) == sorted(kept)
    objects = _blob_objects(server, prefix)
    assert len(objects) == 3
    assert not set(gone) - set(kept) & registry.stored_blob_digests()
    registry.services.manifests.delete(repo, "keep")
    registry.pass_windows()
    registry.gc()
    assert _blob_objects(server, prefix) == []
    assert registry.stored() == {"s3": set(), "disk": set()}
    assert registry.counts() == empty


def test_a_push_racing_gc_on_s3_loses_nothing(world: tuple[World, S3Server, str]) -> None:
    registry, _, _ = world
    repo = registry.repository("acme/app")
    errors: list[BaseException] = []
    for number in range(6):
        layer = f"raced layer {number}".encode()
        registry.blob(repo, layer)
        registry.clock.advance(LINK_S + 1)

        def push(n: int = number, data: bytes = layer) -> None:
            try:
                registry.image(repo, f"r{n}", [data], seed=str(n))
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=push), threading.Thread(target=registry.gc)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not errors, errors
    registry.gc()
    for number in range(6):
        registry.pull(repo, f"r{number}")
