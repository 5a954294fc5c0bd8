"""A state machine of hostile upload traffic over two real server processes sharing one store.

Hypothesis interleaves PATCHes (ranged or not, right or wrong offsets), racing PATCHes sent at
once to both servers, writers that stall and then send too much, writers that vanish
mid-body, final PUTs with right and wrong digests, and cancellations, on shared sessions. After
every step, read straight from the database and the disk:

* every session's committed byte count equals the bytes its file holds, and its saved SHA-256
  state is the hash of exactly those bytes;
* every recorded blob's stored bytes hash to its digest;
* every session holds exactly the bytes of the PATCHes the servers accepted, in order (so a
  blob finished from it is the bytes the client meant).

Two ``moorage serve`` processes on one store (SQLite and a directory, or PostgreSQL and S3):
a request to one and a request to the other are as concurrent as requests to two workers get.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
import psycopg
import pytest
import yaml
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy.engine import make_url

from moorage.hashing import ResumableHasher
from moorage.storage.keys import blob_key
from support import pgserver
from support.e2e_clients import RegistryServer, run, start_registry
from support.s3servers import S3Server, unique_prefix
from support.slow_clients import RawRequest

MIB = 1 << 20
OCTETS = {"Content-Type": "application/octet-stream"}
SIZES = st.sampled_from([0, 1, 100, 65_536, MIB - 1, MIB, MIB + 1, 2 * MIB + 3])
EXAMPLES = int(os.environ.get("MOORAGE_STATEFUL_EXAMPLES", "12"))


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Store(Protocol):
    """What the servers share, read behind their backs."""

    def uploads(self) -> list[tuple[str, int, bytes | None]]:
        """``(upload id, committed byte count, SHA-256 state)`` of every open session."""
        ...

    def session_bytes(self, upload_id: str) -> bytes: ...

    def blobs(self) -> list[tuple[str, bytes]]:
        """``(digest, stored bytes)`` of every placed blob."""
        ...


@dataclass
class DiskStore:
    data_dir: Path

    def uploads(self) -> list[tuple[str, int, bytes | None]]:
        database = f"file:{self.data_dir / 'moorage.db'}?mode=ro"
        with sqlite3.connect(database, uri=True) as db:
            rows = db.execute("SELECT uuid, byte_count, sha_state FROM blob_upload").fetchall()
        return [(u, n, None if state is None else bytes(state)) for u, n, state in rows]

    def session_bytes(self, upload_id: str) -> bytes:
        return (self.data_dir / "storage" / "_uploads" / upload_id).read_bytes()

    def blobs(self) -> list[tuple[str, bytes]]:
        database = f"file:{self.data_dir / 'moorage.db'}?mode=ro"
        with sqlite3.connect(database, uri=True) as db:
            digests = db.execute(
                "SELECT b.digest FROM blob b JOIN blob_placement p ON p.blob_id = b.id"
            ).fetchall()
        storage = self.data_dir / "storage"
        return [(d, (storage / blob_key(d)).read_bytes()) for (d,) in digests]


@dataclass
class PostgresS3Store:
    database_url: str
    s3: S3Server
    prefix: str

    def _rows(self, query: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url) as db:
            return list(db.execute(query).fetchall())

    def _object(self, key: str) -> bytes:
        found = self.s3.client.get_object(Bucket=self.s3.bucket, Key=f"{self.prefix}/{key}")
        data: bytes = found["Body"].read()
        return data

    def uploads(self) -> list[tuple[str, int, bytes | None]]:
        rows = self._rows("SELECT uuid, byte_count, sha_state FROM blob_upload")
        return [(u, n, None if state is None else bytes(state)) for u, n, state in rows]

    def session_bytes(self, upload_id: str) -> bytes:
        (metadata,) = self._rows(
            f"SELECT storage_metadata FROM blob_upload WHERE uuid = '{upload_id}'"
        )[0]
        return b"".join(self._object(segment["key"]) for segment in metadata.get("segments", []))

    def blobs(self) -> list[tuple[str, bytes]]:
        rows = self._rows("SELECT b.digest FROM blob b JOIN blob_placement p ON p.blob_id = b.id")
        return [(d, self._object(blob_key(d))) for (d,) in rows]


@pytest.fixture(scope="module", params=["sqlite-disk", "postgres-s3"])
def twins(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[list[RegistryServer], Store]]:
    """Two servers sharing one store: SQLite and a directory, or PostgreSQL and S3."""
    base = tmp_path_factory.mktemp("twins")
    config = base / "moorage.yaml"
    settings_text = os.environ.get("MOORAGE_STATEFUL_CONFIG", "upload_body_idle_timeout_s: 5")
    shared: Path | None = base / "shared-data"
    store: Store
    with ExitStack() as stack:
        if request.param == "postgres-s3":
            server_url = request.getfixturevalue("postgres_url")
            url = pgserver.create_database(server_url)
            stack.callback(pgserver.drop_database, server_url, make_url(url).database)
            s3: S3Server = request.getfixturevalue("seaweedfs_s3")
            prefix = unique_prefix()
            location = {"driver": "s3", **s3.driver_options(prefix)}
            document = {
                **yaml.safe_load(settings_text),
                "database_url": url,
                "auto_migrate": False,
                "storage": {"default_location": "s3", "locations": {"s3": location}},
            }
            config.write_text(json.dumps(document))
            moorage = str(Path(sys.executable).parent / "moorage")
            run([moorage, "db", "upgrade", "--config", str(config)], timeout=120)
            store, shared = PostgresS3Store(url, s3, prefix), None
        else:
            config.write_text(settings_text + "\n")
            assert shared is not None
            store = DiskStore(shared)
        servers = [
            stack.enter_context(
                start_registry(
                    base / name, "moorage", extra_args=["--config", str(config)], data_dir=shared
                )
            )
            for name in ("one", "two")
        ]
        yield servers, store


class Session:
    def __init__(self, location: str) -> None:
        self.location = location
        self.upload_id = location.rstrip("/").rsplit("/", 1)[1]
        self.accepted = b""  # the bytes of every PATCH a server accepted, in order


class UploadTraffic(RuleBasedStateMachine):
    sessions = Bundle("sessions")

    def __init__(self, servers: list[RegistryServer], store: Store) -> None:
        super().__init__()
        self.servers = servers
        self.clients = [httpx.Client(base_url=s.base_url, timeout=30) for s in servers]
        self.store = store
        self.repo = f"stateful/run-{time.monotonic_ns()}"
        self.live: dict[str, Session] = {}
        self.seed = 0

    def teardown(self) -> None:
        for client in self.clients:
            client.close()

    def _bytes(self, size: int) -> bytes:
        self.seed += 1
        return (f"{self.seed}:".encode() * (size // 2 + 1))[:size]

    def _patch(
        self, server: int, session: Session, data: bytes, start: int | None
    ) -> httpx.Response:
        headers = dict(OCTETS)
        if start is not None:
            headers["Content-Range"] = f"{start}-{start + len(data) - 1}"
        return self.clients[server].patch(session.location, content=data, headers=headers)

    # Rules --------------------------------------------------------------------------------

    @rule(target=sessions, server=st.integers(0, 1))
    def start(self, server: int) -> Session:
        response = self.clients[server].post(f"/v2/{self.repo}/blobs/uploads/")
        assert response.status_code == 202, response.text
        session = Session(response.headers["Location"])
        self.live[session.upload_id] = session
        return session

    @rule(
        session=sessions,
        server=st.integers(0, 1),
        size=SIZES,
        ranged=st.booleans(),
        skew=st.sampled_from([0, 0, 0, -1, 1]),
    )
    def patch(self, session: Session, server: int, size: int, ranged: bool, skew: int) -> None:
        if session.upload_id not in self.live or (ranged and size == 0):
            return
        data = self._bytes(size)
        start = len(session.accepted) + skew if ranged else None
        if start is not None and start < 0:
            start = 0 if len(session.accepted) else 1
        response = self._patch(server, session, data, start)
        assert response.status_code < 500, response.text
        if response.status_code == 202:
            assert start is None or start == len(session.accepted)
            session.accepted += data
        else:
            assert response.status_code == 416 and start != len(session.accepted), response.text
        assert response.headers["Range"] == _range(session.accepted)

    @rule(session=sessions, sizes=st.tuples(SIZES, SIZES), ranged=st.booleans())
    def racing_patches(self, session: Session, sizes: tuple[int, int], ranged: bool) -> None:
        """Two PATCHes from the same offset at once, one to each server: with ranges at most
        one counts; without, each that counts is appended whole, in some order."""
        if session.upload_id not in self.live or 0 in sizes:
            return
        bodies = [self._bytes(size) for size in sizes]
        start = len(session.accepted) if ranged else None
        results: list[httpx.Response | None] = [None, None]
        barrier = threading.Barrier(2)

        def send(index: int) -> None:
            barrier.wait()
            results[index] = self._patch(index, session, bodies[index], start)

        threads = [threading.Thread(target=send, args=(i,)) for i in (0, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        statuses = [r.status_code if r is not None else 0 for r in results]
        assert set(statuses) <= {202, 416}, [r.text for r in results if r is not None]
        won = [bodies[i] for i in (0, 1) if statuses[i] == 202]
        if ranged:
            assert len(won) <= 1
        before = session.accepted
        held = self._held(self.clients[0], session)
        candidates = {before + b"".join(order) for order in (won, won[::-1])}
        assert held in candidates, "the session holds bytes no accepted PATCH sent"
        session.accepted = held

    @rule(session=sessions, server=st.integers(0, 1), size=SIZES, extra=st.integers(1, 3))
    def stalled_writer_then_race(
        self, session: Session, server: int, size: int, extra: int
    ) -> None:
        """A ranged PATCH sends its headers and part of its body and stalls; a PATCH to the
        other server races it; the stalled one then sends ``extra`` bytes too many."""
        if session.upload_id not in self.live or size < 2:
            return
        offset = len(session.accepted)
        announced = self._bytes(size)
        stalled = RawRequest(
            self.servers[server].host,
            "PATCH",
            session.location,
            {
                **OCTETS,
                "Content-Range": f"{offset}-{offset + size - 1}",
                "Transfer-Encoding": "chunked",
            },
        )
        stalled.send_chunk(announced[: size // 2])
        time.sleep(0.1)
        racing = self._bytes(size)
        response = self._patch(1 - server, session, racing, offset)
        assert response.status_code in (202, 416), response.text
        if response.status_code == 202:
            session.accepted += racing
        stalled.send_chunk(announced[size // 2 :] + b"!" * extra)
        stalled.send_chunk(b"")
        late = stalled.response()
        stalled.close()
        assert 400 <= late.status < 500, late
        assert self._held(self.clients[0], session) == session.accepted

    @rule(session=sessions, server=st.integers(0, 1), size=SIZES, cut=st.floats(0, 1))
    def vanishing_writer(self, session: Session, server: int, size: int, cut: float) -> None:
        if session.upload_id not in self.live or size == 0:
            return
        offset = len(session.accepted)
        data = self._bytes(size)
        writer = RawRequest(
            self.servers[server].host,
            "PATCH",
            session.location,
            {
                **OCTETS,
                "Content-Range": f"{offset}-{offset + size - 1}",
                "Content-Length": str(size),
            },
        )
        writer.send(data[: int(size * cut)])
        writer.abort()
        self._settle(session)
        assert self._held(self.clients[server], session) == session.accepted

    @rule(
        session=consumes(sessions),
        server=st.integers(0, 1),
        size=SIZES,
        right=st.booleans(),
    )
    def finish(self, session: Session, server: int, size: int, right: bool) -> None:
        if session.upload_id not in self.live:
            return
        last = self._bytes(size)
        whole = session.accepted + last
        digest = digest_of(whole if right else whole + b"?")
        response = self.clients[server].put(
            f"{session.location}?digest={digest}", content=last, headers=OCTETS
        )
        del self.live[session.upload_id]
        if right:
            assert response.status_code == 201, response.text
            blob = self.clients[1 - server].get(f"/v2/{self.repo}/blobs/{digest}")
            assert blob.status_code == 200 and blob.content == whole
        else:
            assert response.status_code == 400, response.text
            assert response.json()["errors"][0]["code"] == "DIGEST_INVALID"

    @rule(session=consumes(sessions), server=st.integers(0, 1))
    def cancel(self, session: Session, server: int) -> None:
        if session.upload_id not in self.live:
            return
        assert self.clients[server].delete(session.location).status_code == 204
        del self.live[session.upload_id]
        assert self.clients[1 - server].get(session.location).status_code == 404

    # Invariants ---------------------------------------------------------------------------

    @invariant()
    def stored_bytes_agree_with_what_is_recorded(self) -> None:
        for upload_id, byte_count, sha_state in self.store.uploads():
            held = self.store.session_bytes(upload_id)
            assert len(held) == byte_count, f"session {upload_id}: {len(held)} != {byte_count}"
            if sha_state is not None:
                state = ResumableHasher.from_state(sha_state).hexdigest()
                assert state == hashlib.sha256(held).hexdigest()
            mine = self.live.get(upload_id)
            if mine is not None:
                assert held == mine.accepted
        for digest, stored in self.store.blobs():
            algorithm, hex_digest = digest.split(":")
            assert hashlib.new(algorithm, stored).hexdigest() == hex_digest

    def _held(self, client: httpx.Client, session: Session) -> bytes:
        """The session's bytes on disk, checked against the size its status reports."""
        status = client.get(session.location)
        assert status.status_code == 204, status.text
        held = self.store.session_bytes(session.upload_id)
        assert status.headers["Range"] == _range(held)
        return held

    def _settle(self, session: Session) -> None:
        """Waits (bounded) until no request holds the session: a PATCH of nothing at its end
        is refused with 416 while one does."""
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            probe = self.clients[0].patch(
                session.location, content=b"", headers={**OCTETS, "Content-Length": "0"}
            )
            if probe.status_code == 202:
                return
            assert probe.status_code == 416, probe.text
            time.sleep(0.05)
        raise AssertionError("the session stayed busy")


def _range(data: bytes) -> str:
    return f"0-{max(len(data) - 1, 0)}"


def test_upload_sessions_under_interleaved_hostile_traffic(
    twins: tuple[list[RegistryServer], Store],
) -> None:
    servers, store = twins
    run_state_machine_as_test(
        lambda: UploadTraffic(servers, store),
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=12,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
