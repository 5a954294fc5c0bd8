"""GC against concurrent pushes, and GC against GC, with real threads and real locks on
SQLite and PostgreSQL: a layer pushed while GC collects its blob is never lost; two GCs at
once delete each thing once and leave the baseline; random push/tag/delete/restore
sequences then GC leave every live tag pulling every blob, and nothing once all is deleted."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from moorage.domain.errors import BlobNotFoundError
from moorage.storage import StorageDriver, create_driver
from support.gc_world import LINK_S, World, open_world, sha256


class PausingDriver:
    """The real filesystem driver, stopping after a push moved its bytes into place (before
    the blob row is committed) until told to go on: the moment GC must not get in."""

    def __init__(self, real: StorageDriver) -> None:
        self.real = real
        self.pause = False
        self.moved = threading.Event()
        self.proceed = threading.Event()

    def complete_upload(self, *args: Any, **kwargs: Any) -> Any:
        result = self.real.complete_upload(*args, **kwargs)
        if self.pause:
            self.moved.set()
            assert self.proceed.wait(30)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/gc.db"
    found: str = request.getfixturevalue("fresh_postgres_url")
    return found


@pytest.fixture
def paused(url: str, tmp_path: Path) -> Iterator[tuple[World, PausingDriver]]:
    driver = PausingDriver(create_driver("filesystem", root=tmp_path / "local"))
    with open_world(url, {"local": driver}) as world:  # type: ignore[dict-item]
        yield world, driver


def _garbage_blob(world: World, data: bytes) -> str:
    """A blob whose only link expired: the next GC collects it."""
    repo = world.repository("acme/app")
    digest = world.blob(repo, data)
    world.clock.advance(LINK_S + 1)
    return digest


def _push_again_paused(world: World, driver: PausingDriver, data: bytes) -> threading.Thread:
    repo = world.repository("acme/app")
    driver.pause = True

    def push() -> None:
        world.blob(repo, data)

    pusher = threading.Thread(target=push)
    pusher.start()
    assert driver.moved.wait(30), "the push never reached the commit"
    return pusher


def test_gc_cannot_delete_a_blob_a_push_is_committing(
    paused: tuple[World, PausingDriver],
) -> None:
    world, driver = paused
    data = b"the layer GC and a push meet on"
    digest = _garbage_blob(world, data)
    pusher = _push_again_paused(world, driver, data)
    report = world.gc()  # the push holds the digest between its move and its commit
    assert report.blobs == 0 and report.busy == 1
    driver.proceed.set()
    pusher.join(30)
    assert world.pull_blob(world.repository("acme/app"), digest) == data
    world.clock.advance(LINK_S + 1)
    assert world.gc().blobs == 1  # and once unreferenced, it still goes


def test_without_the_digest_lock_the_same_race_loses_the_blob(
    paused: tuple[World, PausingDriver],
) -> None:
    """The old design (no lock between the bytes move and the commit): the race is real."""
    world, driver = paused
    world.model.holding_blob_digest = lambda digest: nullcontext()  # type: ignore[method-assign]
    data = b"the layer GC and a push meet on"
    digest = _garbage_blob(world, data)
    pusher = _push_again_paused(world, driver, data)
    report = world.gc()
    assert report.blobs == 1  # GC deleted the old row and the bytes the push just moved
    driver.proceed.set()
    pusher.join(30)
    with pytest.raises(BlobNotFoundError):  # the push's row points at nothing
        world.pull_blob(world.repository("acme/app"), digest)


@pytest.fixture
def world(url: str, tmp_path: Path) -> Iterator[World]:
    drivers = {"local": create_driver("filesystem", root=tmp_path / "local")}
    with open_world(url, drivers) as opened:
        yield opened


def test_pushes_racing_gc_over_the_same_layers_lose_nothing(world: World) -> None:
    """Threads, no hooks: each round makes a layer garbage, then pushes an image using it
    while GC runs; every image pushed pulls back whole."""
    repo = world.repository("acme/app")
    errors: list[BaseException] = []
    for round_number in range(25):
        layer = f"shared layer {round_number}".encode()
        world.blob(repo, layer)
        world.clock.advance(LINK_S + 1)

        def push(number: int = round_number, data: bytes = layer) -> None:
            try:
                world.image(repo, f"r{number}", [data], seed=str(number))
            except BaseException as exc:
                errors.append(exc)

        def collect() -> None:
            try:
                world.gc()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=push), threading.Thread(target=collect)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not errors, errors
        world.pull(repo, f"r{round_number}")
    world.gc()
    for round_number in range(25):
        world.pull(repo, f"r{round_number}")


def test_two_gcs_at_once_delete_everything_once(world: World, url: str) -> None:
    repo = world.repository("acme/app")
    empty = world.counts()
    for number in range(12):
        world.image(repo, f"t{number}", [f"layer {number}".encode(), b"common"], seed=str(number))
        world.services.manifests.delete(repo, f"t{number}")
    world.pass_windows()
    drivers = world.locations.drivers
    with open_world(url, dict(drivers)) as other:  # a second process's engine and locks
        other.clock.now = world.clock.now
        reports: list[Any] = []
        errors: list[BaseException] = []

        def collect(who: World) -> None:
            try:
                reports.append(who.collector(batch=3).run_once())
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=collect, args=(w,)) for w in (world, other)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
    assert not errors, errors
    assert sum(r.manifests for r in reports) == 12
    assert sum(r.blobs for r in reports) == 12 * 2 + 1  # configs, layers, the common one
    world.gc()  # whatever one skipped while the other held it
    assert world.counts() == empty
    assert world.stored_blob_digests() == set()


OPS = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "push",
                "push_other",
                "move",
                "delete_tag",
                "delete_digest",
                "restore",
                "advance",
                "gc",
                "mount",
                "index",
            ]
        ),
        st.integers(0, 3),
        st.integers(0, 3),
    ),
    min_size=1,
    max_size=14,
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=OPS)
def test_random_histories_then_gc_keep_every_live_tag_whole(world: World, ops: list[Any]) -> None:
    repos = [world.repository("acme/one"), world.repository("acme/two")]
    start = world.counts()  # every example ends where it began (checked below)
    layers = [f"layer {n}".encode() for n in range(4)]
    pushed: dict[int, tuple[int, str]] = {}  # manifest number -> (repo index, digest)
    for op, a, b in ops:
        repo_index = 1 if op == "push_other" else 0
        repo = repos[repo_index]
        if op in ("push", "push_other"):
            digest, _ = world.image(
                repo, f"tag{b}", [layers[a], layers[(a + b) % 4]], seed=f"{a}{b}"
            )
            pushed[len(pushed)] = (repo_index, digest)
        elif op == "move" and pushed:
            index, digest = pushed[a % len(pushed)]
            manifest = world.model.lookup_manifest_by_digest(repos[index], digest, allow_dead=True)
            if manifest is not None:  # (onto a manifest deleted by digest: revives it)
                world.model.retarget_tag(repos[index], f"tag{b}", manifest)
        elif op == "delete_tag":
            for target in repos:
                if world.model.get_repo_tag(target, f"tag{b}") is not None:
                    world.services.manifests.delete(target, f"tag{b}")
        elif op == "delete_digest" and pushed:
            index, digest = pushed[a % len(pushed)]
            manifest = world.model.lookup_manifest_by_digest(repos[index], digest, allow_dead=True)
            if manifest is not None:
                world.model.delete_manifest(repos[index], manifest)
        elif op == "restore" and pushed:
            index, digest = pushed[a % len(pushed)]
            manifest = world.model.lookup_manifest_by_digest(repos[index], digest, allow_dead=True)
            if manifest is not None:
                world.model.retarget_tag(repos[index], f"tag{b}", manifest, is_reversion=True)
        elif op == "index":
            mine = [d for i, d in pushed.values() if i == 0]
            children = [
                d
                for d in mine[-2:]
                if world.model.lookup_manifest_by_digest(repos[0], d, allow_dead=True)
            ]
            if children:
                world.index(repos[0], f"tag{b}", children)
        elif op == "advance":
            world.clock.advance([30, 700, 2000, 5000][a])
        elif op == "mount":
            digest = sha256(layers[a])
            if world.model.get_repo_blob_by_digest(repos[0], digest) is not None:
                world.services.blobs.mount(repos[1], digest, repos[0])
        elif op == "gc":
            world.gc()
    world.gc()
    for repo in repos:
        for tag in world.model.list_repository_tags(repo):
            world.pull(repo, tag.name)
    # Then everything deleted and past every window: nothing is left behind.
    for repo in repos:
        for tag in world.model.list_repository_tags(repo):
            world.model.delete_tag(repo, tag.name)
    world.pass_windows()
    world.gc()
    assert world.counts() == start
    assert world.stored_blob_digests() == set()
