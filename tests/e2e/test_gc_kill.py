"""``kill -9`` in the middle of every write path of issue 14, on SQLite + disk and on
PostgreSQL + S3 (SeaweedFS): a ``moorage serve`` killed mid-PATCH, mid-PUT body, while it
commits the final PUT and mid-manifest-PUT; a ``moorage gc`` killed at random points of a
large batch. After each kill (and a restart) every committed image pulls back bit-identical,
the interrupted operation's retry succeeds (an upload resumed from the offset the server
reports, or restarted), and the next GC finishes the interrupted batch: every row and object
of the garbage gone, nothing live gone.

(The all-or-nothing of a killed manifest PUT with its labels and expiry is
``tests/http/v2/test_manifest_push_kill.py``; here the manifest PUT kill checks the tag and
manifest together and the retry, on both backends.)"""

from __future__ import annotations

import json
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from bench.gc_soak import (
    OCI_MANIFEST,
    Process,
    S3Target,
    free_port,
    moorage,
    moorage_argv,
    object_counts,
    pull_whole,
    row_counts,
    spawn,
    wait_until_up,
)
from bench.gc_soak_clients import OCI_CONFIG, OCI_LAYER
from bench.gc_soak_ledger import Image, Ledger, sha256_digest
from sqlalchemy import Engine, create_engine, func, select

from moorage.db import tables
from support.s3servers import S3Server, unique_prefix

MiB = 1024 * 1024
REPO = "kill/app"
# No grace: garbage is collectable at once; small batches, so a cycle takes many; no GC
# inside the server (the killed `moorage gc` is the only collector).
GC_SETTINGS: dict[str, Any] = {
    "gc": {
        "enabled": False,
        "batch_size": 40,
        "blob_grace_s": 0,
        "manifest_grace_s": 0,
        "tag_grace_s": 0,
    }
}


@dataclass(frozen=True)
class Backend:
    name: str
    config: Path
    database_url: str
    blob_objects: Callable[[], set[str]]  # digests of the objects under blobs/
    upload_objects: Callable[[], int]
    settings: dict[str, Any]

    def write_config(self, **extra: Any) -> None:
        self.config.write_text(json.dumps(self.settings | extra))


@pytest.fixture(params=["sqlite-disk", "postgres-s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    settings: dict[str, Any] = {
        "auto_migrate": True,
        "namespace_default_removed_tag_expiration_s": 0,
        **GC_SETTINGS,
    }
    if request.param == "sqlite-disk":
        data_dir = tmp_path / "data"
        storage = data_dir / "storage"
        settings |= {"data_dir": str(data_dir)}
        url = f"sqlite:///{data_dir / 'moorage.db'}"

        def disk_blobs() -> set[str]:
            return {f"sha256:{p.name}" for p in (storage / "blobs").glob("sha256/*/*")}

        def disk_uploads() -> int:
            return sum(1 for p in (storage / "_uploads").glob("**/*") if p.is_file())

        backend = Backend(
            request.param, tmp_path / "moorage.yaml", url, disk_blobs, disk_uploads, settings
        )
    else:
        url = request.getfixturevalue("fresh_postgres_url")
        weed: S3Server = request.getfixturevalue("seaweedfs_s3")
        s3 = S3Target(weed.driver_options(unique_prefix()), weed.client)
        settings |= {
            "database_url": url,
            "storage": {
                "default_location": "s3",
                "locations": {"s3": {"driver": "s3", **s3.options}},
            },
        }

        def s3_blobs() -> set[str]:
            below = f"{s3.prefix}/blobs/"
            found = set()
            for page in weed.client.get_paginator("list_objects_v2").paginate(
                Bucket=s3.bucket, Prefix=below
            ):
                found |= {"sha256:" + i["Key"].rsplit("/", 1)[1] for i in page.get("Contents", [])}
            return found

        def s3_uploads() -> int:
            counts = object_counts(s3)
            return counts["upload_objects"] + counts["multipart_uploads"]

        backend = Backend(
            request.param, tmp_path / "moorage.yaml", url, s3_blobs, s3_uploads, settings
        )
    backend.write_config()
    return backend


@contextmanager
def serve(backend: Backend, workdir: Path) -> Iterator[tuple[Process, httpx.Client]]:
    port = free_port()
    argv = [*moorage_argv(), "serve", "--config", str(backend.config), "--port", str(port)]
    server = spawn(f"serve-{port}", argv, workdir)
    try:
        wait_until_up(server, f"http://127.0.0.1:{port}")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60, trust_env=False) as http:
            yield server, http
    finally:
        server.kill(signal.SIGKILL)


def push_blob(http: httpx.Client, ledger: Ledger, data: bytes) -> str:
    digest = ledger.add_blob(data)
    response = http.post(f"/v2/{REPO}/blobs/uploads/", params={"digest": digest}, content=data)
    assert response.status_code == 201, response.text
    return digest


def image_for(ledger: Ledger, layers: list[str], note: str) -> Image:
    config = json.dumps({"architecture": "amd64", "os": "linux", "note": note}).encode()
    config_digest = ledger.add_blob(config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
            "layers": [
                {"mediaType": OCI_LAYER, "digest": d, "size": len(ledger.blobs[d])} for d in layers
            ],
        }
    ).encode()
    image = Image(REPO, manifest, OCI_MANIFEST, (config_digest, *layers))
    ledger.add_image(image)
    return image


def push_image(http: httpx.Client, ledger: Ledger, layers: list[str], tag: str) -> Image:
    image = image_for(ledger, layers, tag)
    push_blob(http, ledger, ledger.blobs[image.blobs[0]])
    response = http.put(
        f"/v2/{REPO}/manifests/{tag}",
        content=image.manifest,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert response.status_code == 201, response.text
    return image


def assert_committed_intact(http: httpx.Client, ledger: Ledger, committed: dict[str, str]) -> None:
    for tag, digest in committed.items():
        assert pull_whole(http, ledger, REPO, tag) is None, (
            tag,
            pull_whole(http, ledger, REPO, tag),
        )
        assert pull_whole(http, ledger, REPO, digest) is None


# -------------------------------------------------------------------------------------------------
# The server killed mid-write


class KillPoint:
    """Where the uploading thread's body stops for the kill: ``phase`` at ``offset`` bytes
    (the body stalls there, mid-request, until the server is gone), or with ``offset`` None
    once the phase's whole body is handed over (the server then hashes and commits)."""

    def __init__(self, phase: str, offset: int | None) -> None:
        self.phase, self.offset = phase, offset
        self.reached = threading.Event()
        self.killed = threading.Event()


def slow_body(data: bytes, point: KillPoint, phase: str) -> Iterator[bytes]:
    step = 256 * 1024
    for offset in range(0, len(data), step):
        if phase == point.phase and point.offset is not None and offset >= point.offset:
            point.reached.set()
            point.killed.wait(60)
        yield data[offset : offset + step]
    if phase == point.phase and point.offset is None:
        point.reached.set()


def interrupted_upload(
    http: httpx.Client, data: bytes, point: KillPoint, location: list[str]
) -> None:
    """POST, two PATCHes, the final PUT with the last third as its body; dies with the
    server (the exception is the expected end)."""
    try:
        started = http.post(f"/v2/{REPO}/blobs/uploads/")
        location.append(started.headers["Location"])
        third = len(data) // 3
        for number, piece in enumerate((data[:third], data[third : 2 * third])):
            response = http.patch(
                location[-1],
                content=slow_body(piece, point, f"patch{number}"),
                headers={"Content-Type": "application/octet-stream"},
            )
            location.append(response.headers["Location"])
        http.put(
            location[-1],
            params={"digest": sha256_digest(data)},
            content=slow_body(data[2 * third :], point, "put"),
        )
    except httpx.HTTPError:
        pass  # the server died under it
    finally:
        point.reached.set()


def finish_after_restart(http: httpx.Client, data: bytes, location: str | None) -> str:
    """Resume the session from the offset the server reports, or upload again when it lost
    it; the blob must end up whole either way. Returns how it ended."""
    digest = sha256_digest(data)
    if http.head(f"/v2/{REPO}/blobs/{digest}").status_code == 200:
        return "committed before the kill"
    if location is not None:
        status = http.get(location)
        if status.status_code == 204:
            last = int(status.headers["Range"].split("-")[1])
            offset = last + 1 if last > 0 else 0  # "0-0" is empty here (one byte never is)
            response = http.patch(
                status.headers["Location"],
                content=data[offset:],
                headers={"Content-Range": f"{offset}-{len(data) - 1}"},
            )
            if response.status_code != 404:
                assert response.status_code == 202, response.text
                done = http.put(response.headers["Location"], params={"digest": digest})
                assert done.status_code == 201, done.text
                return f"resumed at {offset}"
            # A kill between the commit's rename of the session file and its transaction
            # leaves the session's row without its bytes: the status still answers from the
            # row, the PATCH finds no bytes and says so, and the client starts again, as the
            # protocol has it for BLOB_UPLOAD_UNKNOWN at any step.
            assert "BLOB_UPLOAD_UNKNOWN" in response.text, response.text
        else:
            assert status.status_code == 404, status.text
    done = http.post(f"/v2/{REPO}/blobs/uploads/", params={"digest": digest}, content=data)
    assert done.status_code == 201, done.text
    return "uploaded again"


def kill_mid_upload(
    server: Process, http: httpx.Client, data: bytes, phase: str, rng: random.Random
) -> str | None:
    if phase == "commit":  # the PUT's whole body is sent: the server hashes and commits
        point = KillPoint("put", None)
    else:
        point = KillPoint(phase, int(rng.uniform(0.1, 0.9) * len(data) / 3))
    location: list[str] = []
    thread = threading.Thread(target=interrupted_upload, args=(http, data, point, location))
    thread.start()
    assert point.reached.wait(60), "the upload never reached its kill point"
    if phase == "commit":
        time.sleep(rng.uniform(0, 0.01))
    server.kill(signal.SIGKILL)
    point.killed.set()
    thread.join(timeout=60)
    return location[-1] if location else None


def kill_mid_manifest(
    server: Process, http: httpx.Client, image: Image, tag: str, rng: random.Random
) -> None:
    def put() -> None:
        with suppress(httpx.HTTPError):
            http.put(
                f"/v2/{REPO}/manifests/{tag}",
                content=image.manifest,
                headers={"Content-Type": OCI_MANIFEST},
            )

    thread = threading.Thread(target=put)
    thread.start()
    time.sleep(rng.uniform(0, 0.01))
    server.kill(signal.SIGKILL)
    thread.join(timeout=60)


def recover(
    http: httpx.Client, ledger: Ledger, phase: str, tag: str, shared: str, pending: Any
) -> tuple[Image, str]:
    """After the restart: the interrupted operation left all or nothing, and its retry
    succeeds. Returns the image to tag and how the interrupted operation had ended."""
    if phase == "manifest":
        image: Image = pending
        by_tag = http.get(f"/v2/{REPO}/manifests/{tag}", headers={"Accept": OCI_MANIFEST})
        by_digest = http.get(f"/v2/{REPO}/manifests/{image.digest}")
        assert (by_tag.status_code, by_digest.status_code) in ((200, 200), (404, 404))
        assert by_tag.status_code == 404 or sha256_digest(by_tag.content) == image.digest
        return image, f"manifest: {'stored' if by_tag.status_code == 200 else 'absent'}"
    data, location = pending
    ending = f"{phase}: {finish_after_restart(http, data, location)}"
    image = image_for(ledger, [shared, ledger.add_blob(data)], tag)
    push_blob(http, ledger, ledger.blobs[image.blobs[0]])
    return image, ending


def test_server_killed_mid_upload_and_mid_manifest_put(backend: Backend, tmp_path: Path) -> None:
    rng = random.Random(f"kill-{backend.name}")
    ledger = Ledger()
    committed: dict[str, str] = {}
    phases = [rng.choice(["patch0", "patch1"]), "put", "commit", "manifest"]
    endings = []
    pending: Any = None
    for round_number in range(len(phases) + 1):
        with serve(backend, tmp_path) as (server, http):
            if round_number == 0:
                shared = push_blob(http, ledger, rng.randbytes(64 * 1024))
                for number in range(2):
                    layer = push_blob(http, ledger, rng.randbytes(100_000))
                    tag = f"base{number}"
                    committed[tag] = push_image(http, ledger, [shared, layer], tag).digest
            else:
                assert_committed_intact(http, ledger, committed)
                phase, tag = phases[round_number - 1], f"round{round_number - 1}"
                image, ending = recover(http, ledger, phase, tag, shared, pending)
                endings.append(ending)
                retried = http.put(
                    f"/v2/{REPO}/manifests/{tag}",
                    content=image.manifest,
                    headers={"Content-Type": OCI_MANIFEST},
                )
                assert retried.status_code == 201, retried.text
                committed[tag] = image.digest
                assert_committed_intact(http, ledger, committed)
            if round_number == len(phases):
                # GC, online, after the kills: it takes nothing committed.
                result = moorage(["gc", "--output", "json"], backend.config)
                assert result.returncode == 0, result.stderr
                assert_committed_intact(http, ledger, committed)
                break
            phase = phases[round_number]
            data = rng.randbytes(6 * MiB + rng.randint(0, 4096))
            if phase == "manifest":
                layer = push_blob(http, ledger, data)
                image = image_for(ledger, [shared, layer], f"round{round_number}")
                push_blob(http, ledger, ledger.blobs[image.blobs[0]])
                kill_mid_manifest(server, http, image, f"round{round_number}", rng)
                pending = image
            else:
                pending = (data, kill_mid_upload(server, http, data, phase, rng))
    print(f"{backend.name}: " + "; ".join(endings))


# -------------------------------------------------------------------------------------------------
# GC killed mid-batch


def live_blob_digests(database_url: str) -> set[str]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return {row[0] for row in conn.execute(select(tables.blob.c.digest))}
    finally:
        engine.dispose()


def test_gc_killed_mid_batch_is_finished_by_the_next_gc(backend: Backend, tmp_path: Path) -> None:
    rng = random.Random(f"gc-kill-{backend.name}")
    backend.write_config(push_temp_tag_expiration_s=3)  # loose uploads are garbage soon
    ledger = Ledger()
    committed: dict[str, str] = {}
    with serve(backend, tmp_path) as (_, http):
        shared = [
            push_blob(http, ledger, rng.randbytes(rng.randint(100, 20_000))) for _ in range(4)
        ]
        for number in range(3):
            own = push_blob(http, ledger, rng.randbytes(5000))
            committed[f"live{number}"] = push_image(
                http, ledger, [*rng.sample(shared, 2), own], f"live{number}"
            ).digest
        live_blobs = {b for d in committed.values() for b in ledger.images[(REPO, d)].blobs}
        # Garbage: images whose tags are gone (no time machine here) and loose blobs.
        garbage: set[str] = set()
        for number in range(25):
            unique = push_blob(http, ledger, rng.randbytes(rng.randint(100, 8000)))
            image = push_image(http, ledger, [rng.choice(shared), unique], f"gone{number}")
            garbage |= {unique, image.blobs[0]}
            assert http.delete(f"/api/v1/repository/{REPO}/tag/gone{number}").status_code == 204
        garbage |= {
            push_blob(http, ledger, rng.randbytes(rng.randint(50, 4000))) for _ in range(250)
        }
        assert not garbage & live_blobs
        time.sleep(4)  # past the uploaded blobs' link expiry
        kills = []
        engine = create_engine(backend.database_url)
        try:
            for number in range(3):
                kills.append(kill_gc_mid_batch(backend, engine, tmp_path, number, rng))
                assert_committed_intact(http, ledger, committed)
                stored = backend.blob_objects()
                assert live_blobs <= stored, "GC removed the bytes of a live blob"
                assert live_blobs <= live_blob_digests(backend.database_url)
                # A retry that pushes garbage content again gets whole blobs.
                again = rng.choice(sorted(garbage))
                push_blob(http, ledger, ledger.blobs[again])
                tag = f"again{number}"
                committed[tag] = push_image(http, ledger, [again], tag).digest
                garbage.discard(again)
                live_blobs |= set(ledger.images[(REPO, committed[tag])].blobs)
                assert_committed_intact(http, ledger, committed)
        finally:
            engine.dispose()
        garbage -= live_blobs
        print(f"{backend.name}: GC runs {kills}")
        result = moorage(["gc", "--output", "json"], backend.config)
        assert result.returncode == 0, result.stderr
        assert_committed_intact(http, ledger, committed)
    rows = live_blob_digests(backend.database_url)
    stored = backend.blob_objects()
    assert not garbage & rows, f"{len(garbage & rows)} garbage blob rows left"
    assert not garbage & stored, f"{len(garbage & stored)} garbage objects left"
    assert live_blobs <= rows and live_blobs <= stored
    counts = row_counts(backend.database_url)
    assert counts["manifest"] == len(set(committed.values())), counts
    assert counts["tag"] == len(committed), counts
    with create_engine(backend.database_url).connect() as conn:  # nothing left half-done
        pending = conn.execute(select(func.count()).select_from(tables.gc_pending_delete))
        assert pending.scalar_one() == 0


def kill_gc_mid_batch(
    backend: Backend, engine: Engine, workdir: Path, number: int, rng: random.Random
) -> str:
    """Start ``moorage gc``; SIGKILL it once it has deleted some manifest or blob rows (a
    random number of them, plus a random few milliseconds), mid-way through its batches."""

    def count(table: Any) -> int:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(table)).scalar_one())

    table = tables.manifest if number == 0 else tables.blob
    before = count(table)
    target = before - rng.randint(1, max(1, before // 2))
    gc = spawn(f"gc-{number}", [*moorage_argv(), "gc", "--config", str(backend.config)], workdir)
    deadline = time.monotonic() + 60
    while gc.process.poll() is None and count(table) > target and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(rng.uniform(0, 0.03))
    finished = gc.process.poll() is not None
    gc.kill(signal.SIGKILL)
    left = count(table)
    return f"{table.name}s {before} -> {left}" + (" (finished first)" if finished else " killed")
