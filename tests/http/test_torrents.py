"""Torrents of blobs (issue 15) over the real app (`app.build`, SQLite and PostgreSQL): the
pieces equal an independent SHA-1 over the bytes however the blob was pushed (monolithic,
PATCHes whose boundaries cross pieces, PATCHes alternating between two application
instances sharing the database and storage, pushed while torrents were off); the web seed URL
serves the bytes (ranges too) without credentials and is refused once expired or changed;
a private repository's torrent is the caller's own."""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from fastbencode import bdecode
from starlette.testclient import TestClient
from tests.http.v2.test_access_seam import PASSWORDS, basic

from moorage.app import Application, build
from moorage.config import load_settings
from moorage.db.migrate import upgrade
from moorage.domain.access import Role
from moorage.domain.accounts import SubjectKind
from moorage.domain.records import Visibility
from moorage.model.sql.token_store import SqlTokenStore
from moorage.services.webseed import WebSeedSigner

PIECE = 16 * 1024  # the smallest piece length: small blobs still span many pieces
ALICE = basic("alice", PASSWORDS["alice"])
BOB = basic("bob", PASSWORDS["bob"])


def blob_of(size: int, seed: int = 15) -> bytes:
    return random.Random(seed).randbytes(size)


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def sha1_pieces(data: bytes, length: int = PIECE) -> bytes:
    """The pieces as any BitTorrent tool computes them, independently of moorage.hashing."""
    return b"".join(
        hashlib.sha1(data[i : i + length]).digest() for i in range(0, len(data), length)
    )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest) -> dict[str, Any]:
    if request.param == "sqlite":
        return {}
    url = request.getfixturevalue("fresh_postgres_url")
    upgrade(url)
    return {"database_url": url}


def make_app(
    tmp_path: Path, database: dict[str, Any], *, enabled: bool = True, **extra: Any
) -> Application:
    torrents = {"enabled": enabled, "piece_length": PIECE, **extra.pop("torrents", {})}
    return build(load_settings(data_dir=tmp_path / "data", torrents=torrents, **database, **extra))


@pytest.fixture
def app(tmp_path: Path, database: dict[str, Any]) -> Iterator[Application]:
    application = make_app(tmp_path, database)
    try:
        yield application
    finally:
        application.close()


@pytest.fixture
def client(app: Application) -> Iterator[TestClient]:
    with TestClient(app.asgi) as test_client:
        yield test_client


def push_whole(
    client: TestClient, repo: str, data: bytes, headers: dict[str, str] | None = None
) -> str:
    digest = digest_of(data)
    response = client.post(
        f"/v2/{repo}/blobs/uploads/?digest={digest}", content=data, headers=headers
    )
    assert response.status_code == 201, response.text
    return digest


def push_chunks(clients: list[TestClient], repo: str, data: bytes, sizes: list[int]) -> str:
    """PATCHes of ``sizes`` bytes (the rest goes with the final PUT), round-robin over
    ``clients``: each PATCH may land on another application instance."""
    started = clients[0].post(f"/v2/{repo}/blobs/uploads/")
    assert started.status_code == 202, started.text
    location = started.headers["Location"]
    offset = 0
    for n, size in enumerate(sizes):
        chunk = data[offset : offset + size]
        headers = {
            "Content-Range": f"{offset}-{offset + size - 1}",
            "Content-Type": "application/octet-stream",
        }
        patched = clients[n % len(clients)].patch(location, content=chunk, headers=headers)
        assert patched.status_code == 202, patched.text
        location = patched.headers["Location"]
        offset += size
    digest = digest_of(data)
    last = clients[len(sizes) % len(clients)]
    finished = last.put(f"{location}?digest={digest}", content=data[offset:])
    assert finished.status_code == 201, finished.text
    return digest


def torrent_of(
    client: TestClient, repo: str, digest: str, headers: dict[str, str] | None = None
) -> dict[bytes, Any]:
    response = client.get(f"/c1/torrent/{repo}/blobs/{digest}", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/x-bittorrent"
    decoded: dict[bytes, Any] = bdecode(response.content)
    return decoded


def seed_path(torrent: dict[bytes, Any]) -> str:
    (url,) = torrent[b"url-list"]
    parts = urlsplit(url.decode())
    return f"{parts.path}?{parts.query}"


def recorded_pieces(app: Application, repo: str, digest: str) -> bytes | None:
    namespace, name = repo.split("/", 1)
    reference = app.model.lookup_repository(namespace, name)
    assert reference is not None
    blob = app.model.get_repo_blob_by_digest(reference, digest)
    assert blob is not None
    info = app.model.get_torrent_info(blob)
    return None if info is None else info.pieces


def assert_torrent_describes(torrent: dict[bytes, Any], data: bytes) -> None:
    info = torrent[b"info"]
    assert info[b"piece length"] == PIECE
    assert info[b"length"] == len(data)
    assert info[b"pieces"] == sha1_pieces(data)
    assert info[b"name"] == ("sha256-" + hashlib.sha256(data).hexdigest()).encode()
    assert b"announce" not in torrent  # none configured: the web seed alone


# -- pieces -------------------------------------------------------------------------------------


def test_a_monolithic_push_records_its_pieces(app: Application, client: TestClient) -> None:
    data = blob_of(3 * PIECE + PIECE // 2)
    digest = push_whole(client, "ns/mono", data)
    assert recorded_pieces(app, "ns/mono", digest) == sha1_pieces(data)  # before any GET
    assert_torrent_describes(torrent_of(client, "ns/mono", digest), data)


@pytest.mark.parametrize(
    "sizes",
    [
        [1, PIECE - 1, PIECE + 7, 3, 2 * PIECE + 5],  # ends on, across and inside pieces
        [PIECE // 3] * 10,  # never on a boundary
        [PIECE, PIECE, 1],  # exactly on boundaries
    ],
)
def test_chunked_pushes_across_piece_boundaries(
    app: Application, client: TestClient, sizes: list[int]
) -> None:
    data = blob_of(sum(sizes) + PIECE // 2 + 11)  # not a multiple of the piece length
    digest = push_chunks([client], "ns/chunked", data, sizes)
    assert recorded_pieces(app, "ns/chunked", digest) == sha1_pieces(data)
    assert_torrent_describes(torrent_of(client, "ns/chunked", digest), data)


def test_patches_alternating_between_two_instances(
    tmp_path: Path, database: dict[str, Any], app: Application, client: TestClient
) -> None:
    """The piece state travels with the session (database) between application instances,
    as between server worker processes."""
    other = make_app(tmp_path, database)
    try:
        with TestClient(other.asgi) as second:
            data = blob_of(5 * PIECE + 123, seed=2)
            sizes = [PIECE // 2 + 1, PIECE + 3, 7, 2 * PIECE - 5]
            digest = push_chunks([client, second], "ns/two", data, sizes)
            assert recorded_pieces(app, "ns/two", digest) == sha1_pieces(data)
            assert_torrent_describes(torrent_of(second, "ns/two", digest), data)
    finally:
        other.close()


def test_a_blob_pushed_while_torrents_were_off_gets_pieces_on_demand(
    tmp_path: Path, database: dict[str, Any]
) -> None:
    data = blob_of(4 * PIECE + 99, seed=3)
    off = make_app(tmp_path, database, enabled=False)
    try:
        with TestClient(off.asgi) as client:
            started = client.post("/v2/ns/old/blobs/uploads/").headers["Location"]
            upload_id = started.rsplit("/", 1)[1]
            patched = client.patch(started, content=data[: PIECE + 5])
            assert patched.status_code == 202
            reference = off.model.lookup_repository("ns", "old")
            assert reference is not None
            session = off.model.lookup_blob_upload(reference, upload_id)
            assert session is not None and session.piece_hashes is None  # no push pays
            assert session.piece_sha_state is None
            finished = client.put(
                f"{patched.headers['Location']}?digest={digest_of(data)}", content=data[PIECE + 5 :]
            )
            assert finished.status_code == 201
            assert recorded_pieces(off, "ns/old", digest_of(data)) is None
            refused = client.get(f"/c1/torrent/ns/old/blobs/{digest_of(data)}")
            assert refused.status_code == 404 and refused.json()["errors"][0]["code"] == "NOT_FOUND"
            assert "not enabled" in refused.json()["errors"][0]["message"]
    finally:
        off.close()
    on = make_app(tmp_path, database)
    try:
        with TestClient(on.asgi) as client:
            assert_torrent_describes(torrent_of(client, "ns/old", digest_of(data)), data)
            assert recorded_pieces(on, "ns/old", digest_of(data)) == sha1_pieces(data)  # kept
    finally:
        on.close()


def test_a_piece_length_changed_mid_upload_is_not_trusted(
    tmp_path: Path, database: dict[str, Any]
) -> None:
    """Pieces hashed under one piece length never make a torrent under another."""
    data = blob_of(6 * PIECE + 1, seed=4)
    first = make_app(tmp_path, database)
    try:
        with TestClient(first.asgi) as client:
            started = client.post("/v2/ns/len/blobs/uploads/").headers["Location"]
            patched = client.patch(started, content=data[: 3 * PIECE + 10])
            assert patched.status_code == 202
    finally:
        first.close()
    second = make_app(tmp_path, database, torrents={"piece_length": 2 * PIECE})
    try:
        with TestClient(second.asgi) as client:
            finished = client.put(
                f"{patched.headers['Location']}?digest={digest_of(data)}",
                content=data[3 * PIECE + 10 :],
            )
            assert finished.status_code == 201
            assert recorded_pieces(second, "ns/len", digest_of(data)) is None  # not trusted
            info = torrent_of(client, "ns/len", digest_of(data))[b"info"]
            assert info[b"piece length"] == 2 * PIECE
            assert info[b"pieces"] == sha1_pieces(data, 2 * PIECE)
    finally:
        second.close()


# -- the web seed ----------------------------------------------------------------------------------


def test_the_web_seed_serves_the_blob_and_ranges(client: TestClient) -> None:
    data = blob_of(2 * PIECE + 77, seed=5)
    digest = push_whole(client, "ns/seed", data)
    path = seed_path(torrent_of(client, "ns/seed", digest))
    whole = client.get(path)
    assert whole.status_code == 200 and whole.content == data
    ranged = client.get(path, headers={"Range": f"bytes={PIECE - 3}-{PIECE + 4}"})
    assert ranged.status_code == 206 and ranged.content == data[PIECE - 3 : PIECE + 5]
    assert ranged.headers["Content-Range"] == f"bytes {PIECE - 3}-{PIECE + 4}/{len(data)}"
    head = client.head(path)
    assert head.status_code == 200 and head.headers["Content-Length"] == str(len(data))


def refusal(response: Any) -> str:
    assert response.status_code == 403, response.text
    error = response.json()["errors"][0]
    assert error["code"] == "DENIED"
    message: str = error["message"]
    return message


def with_query(path: str, **changes: str | None) -> str:
    base, query = path.split("?", 1)
    params = dict(parse_qsl(query))
    for key, value in changes.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = value
    return f"{base}?{urlencode(params)}"


def test_an_expired_web_seed_url_is_refused(app: Application, client: TestClient) -> None:
    data = blob_of(PIECE + 1, seed=6)
    digest = push_whole(client, "ns/exp", data)
    # Signed by the registry's own key, an hour and a minute ago.
    past = WebSeedSigner(SqlTokenStore(app.database), 3600, clock=lambda: time.time() - 3660)
    url = past.sign("http://testserver", "ns/exp", digest, None).url
    assert "expired" in refusal(client.get(url.removeprefix("http://testserver")))
    fresh = seed_path(torrent_of(client, "ns/exp", digest))
    assert client.get(fresh).content == data


def test_a_changed_web_seed_url_is_refused(app: Application, client: TestClient) -> None:
    data = blob_of(PIECE + 2, seed=7)
    other = blob_of(PIECE + 3, seed=8)
    digest = push_whole(client, "ns/tamper", data)
    other_digest = push_whole(client, "ns/tamper", other)
    push_whole(client, "ns/elsewhere", data)
    path = seed_path(torrent_of(client, "ns/tamper", digest))
    signature = dict(parse_qsl(path.split("?", 1)[1]))["signature"]
    flipped = ("B" if signature[0] != "B" else "C") + signature[1:]
    cases = [
        with_query(path, signature=flipped),
        with_query(path, signature=signature[:-1]),
        with_query(path, expires=str(int(time.time()) + 10 * 86_400)),
        with_query(path, user="alice"),
        path.replace(digest, other_digest),
        path.replace("/ns/tamper/", "/ns/elsewhere/"),
        with_query(path, signature=None),
        with_query(path, expires="soon"),
    ]
    for changed in cases:
        refusal(client.get(changed))
    assert client.get(path).content == data


def test_torrents_of_what_there_is_not(client: TestClient) -> None:
    missing = digest_of(b"never pushed")
    push_whole(client, "ns/some", b"x" * 10)
    unknown_blob = client.get(f"/c1/torrent/ns/some/blobs/{missing}")
    assert (
        unknown_blob.status_code == 404
        and unknown_blob.json()["errors"][0]["code"] == "BLOB_UNKNOWN"
    )
    unknown_repo = client.get(f"/c1/torrent/ns/nothing/blobs/{missing}")
    assert (
        unknown_repo.status_code == 404
        and unknown_repo.json()["errors"][0]["code"] == "NAME_UNKNOWN"
    )
    bad_digest = client.get("/c1/torrent/ns/some/blobs/sha256:xyz")
    assert (
        bad_digest.status_code == 400 and bad_digest.json()["errors"][0]["code"] == "DIGEST_INVALID"
    )
    empty = push_whole(client, "ns/some", b"")
    refused = client.get(f"/c1/torrent/ns/some/blobs/{empty}")
    assert refused.status_code == 404 and "empty" in refused.json()["errors"][0]["message"]


def test_a_repository_name_with_a_blobs_component(client: TestClient) -> None:
    data = blob_of(PIECE + 9, seed=9)
    digest = push_whole(client, "ns/blobs/blobs", data)
    torrent = torrent_of(client, "ns/blobs/blobs", digest)
    assert_torrent_describes(torrent, data)
    assert "/c1/webseed/ns/blobs/blobs/blobs/" in seed_path(torrent)
    assert client.get(seed_path(torrent)).content == data


def test_torrents_off_is_404_on_both_routes(tmp_path: Path, database: dict[str, Any]) -> None:
    on = make_app(tmp_path, database)
    try:
        with TestClient(on.asgi) as client:
            digest = push_whole(client, "ns/off", blob_of(100))
            path = seed_path(torrent_of(client, "ns/off", digest))
    finally:
        on.close()
    off = make_app(tmp_path, database, enabled=False)
    try:
        with TestClient(off.asgi) as client:
            for url in (f"/c1/torrent/ns/off/blobs/{digest}", path):
                response = client.get(url)
                assert response.status_code == 404, response.text
                assert "not enabled" in response.json()["errors"][0]["message"]
    finally:
        off.close()


# -- private repositories (auth on) ----------------------------------------------------------------


@pytest.fixture
def secured(
    tmp_path: Path, database: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Application, TestClient]]:
    monkeypatch.setenv("MOORAGE_AUTH__ENABLED", "true")
    application = make_app(
        tmp_path, database, auth={"pull_permission_cache_s": 0, "account_check_s": 0}
    )
    for name, password in PASSWORDS.items():
        application.accounts.create_user(name, password)
    try:
        with TestClient(application.asgi) as test_client:
            yield application, test_client
    finally:
        application.close()


def test_a_private_repository_s_torrent_is_the_caller_s(
    secured: tuple[Application, TestClient],
) -> None:
    app, client = secured
    data = blob_of(2 * PIECE + 5, seed=10)
    digest = push_whole(client, "alice/private", data, ALICE)
    path = f"/c1/torrent/alice/private/blobs/{digest}"
    anonymous = client.get(path)
    assert anonymous.status_code == 401 and "WWW-Authenticate" in anonymous.headers
    outsider = client.get(path, headers=BOB)
    assert outsider.status_code == 401, outsider.text
    assert 'error="insufficient_scope"' in outsider.headers["WWW-Authenticate"]
    torrent = torrent_of(client, "alice/private", digest, ALICE)
    assert torrent[b"info"][b"private"] == 1
    seed = seed_path(torrent)
    assert dict(parse_qsl(seed.split("?", 1)[1]))["user"] == "alice"
    assert client.get(seed).content == data  # no credentials: the URL is the credential
    # Bob's name, or bob's own repository holding the same blob, is not what was signed.
    push_whole(client, "bob/mine", data, BOB)
    refusal(client.get(with_query(seed, user="bob")))
    refusal(client.get(seed.replace("/alice/private/", "/bob/mine/")))
    refusal(client.get(with_query(seed, user=None)))
    # Bob may read once granted; his URL ends with his permission.
    app.accounts.grant("alice/private", SubjectKind.USER, "bob", Role.READ)
    bobs = seed_path(torrent_of(client, "alice/private", digest, BOB))
    assert client.get(bobs).content == data
    app.accounts.revoke("alice/private", SubjectKind.USER, "bob")
    assert "may not pull" in refusal(client.get(bobs))
    assert client.get(seed).content == data


def test_a_public_repository_s_torrent_is_anyone_s_until_it_is_private(
    secured: tuple[Application, TestClient],
) -> None:
    app, client = secured
    data = blob_of(PIECE + 50, seed=11)
    digest = push_whole(client, "alice/open", data, ALICE)
    app.accounts.set_visibility("alice/open", Visibility.PUBLIC)
    torrent = torrent_of(client, "alice/open", digest)  # anonymous
    assert b"private" not in torrent[b"info"]
    seed = seed_path(torrent)
    assert "user" not in dict(parse_qsl(seed.split("?", 1)[1]))
    assert client.get(seed, headers={"Range": "bytes=0-9"}).content == data[:10]
    app.accounts.set_visibility("alice/open", Visibility.PRIVATE)
    assert "may not pull" in refusal(client.get(seed))


def test_a_robot_s_web_seed_url_ends_with_the_robot(
    secured: tuple[Application, TestClient],
) -> None:
    app, client = secured
    data = blob_of(PIECE + 77, seed=12)
    digest = push_whole(client, "alice/ci", data, ALICE)
    robot, secret = app.accounts.create_robot("alice", "builder")
    app.accounts.grant("alice/ci", SubjectKind.ROBOT, robot.name, Role.READ)
    seed = seed_path(torrent_of(client, "alice/ci", digest, basic(robot.name, secret)))
    assert dict(parse_qsl(seed.split("?", 1)[1]))["user"] == "alice+builder"
    assert client.get(seed).content == data
    refusal(client.get(with_query(seed, user="alice")))  # its owner's name is not what was signed
    app.accounts.delete_robot(robot.name)
    assert "gone" in refusal(client.get(seed))
