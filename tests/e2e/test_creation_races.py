"""Racing first pushes into a repository that does not exist yet (issue 11, item 7).

A real ``moorage serve``: one worker on SQLite, and two workers sharing PostgreSQL. Many
clients (each its own connection, released together by a barrier) start uploads, mount a
blob or PUT a manifest into a fresh repository at once: every request must succeed, and the
catalog must list the repository exactly once. Before the fix, 1 to 7 of 8 upload POSTs
answered 500 on PostgreSQL (a unique-key violation from check-then-insert).
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from support import pgserver
from support.e2e_clients import RegistryServer, run, start_registry

ROUNDS = 4  # fresh repository names per test, each raced once
ROUND_BUDGET_S = 60.0  # every round of a test together, whatever the machine
EMPTY_CONFIG = b"{}"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def _moorage() -> str:
    return str(Path(sys.executable).parent / "moorage")


@pytest.fixture(scope="module", params=["sqlite-1-worker", "postgres-2-workers"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, target: str
) -> Iterator[RegistryServer]:
    if target != "moorage":
        pytest.skip("starts moorage servers of its own")
    base = tmp_path_factory.mktemp(request.param)
    if request.param == "sqlite-1-worker":
        with start_registry(base, "moorage", extra_args=["--workers", "1"]) as started:
            yield started
        return
    database = pgserver.create_database(request.getfixturevalue("postgres_url"))
    config = base / "moorage.yaml"
    config.write_text(json.dumps({"database_url": database, "auto_migrate": False}))
    run([_moorage(), "db", "upgrade", "--config", str(config)], timeout=120)
    try:
        args = ["--config", str(config), "--workers", "2"]
        with start_registry(base, "moorage", extra_args=args) as started:
            yield started
    finally:
        name = database.rsplit("/", 1)[1]
        pgserver.drop_database(request.getfixturevalue("postgres_url"), name)


def _race(
    server: RegistryServer, count: int, request: Callable[[int, httpx.Client], httpx.Response]
) -> list[httpx.Response]:
    """``request(index, client)`` from ``count`` clients at once, each on a connection of
    its own opened beforehand (so the requests, not the handshakes, race)."""
    barrier = threading.Barrier(count)
    answers: list[Any] = [None] * count
    errors: list[BaseException] = []

    def client(index: int) -> None:
        try:
            with httpx.Client(base_url=server.base_url, timeout=60, trust_env=False) as http:
                assert http.get("/v2/").status_code == 200
                barrier.wait(timeout=30)
                answers[index] = request(index, http)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    assert not any(thread.is_alive() for thread in threads), "a client hung"
    if errors:
        raise errors[0]
    return answers


def _catalog(http: httpx.Client) -> list[str]:
    names: list[str] = []
    url: str | None = "/v2/_catalog?n=1000"
    while url:
        page = http.get(url)
        assert page.status_code == 200, page.text
        names += page.json()["repositories"]
        link = page.headers.get("Link")
        url = link.split(";")[0].strip("<>") if link else None
    return names


def _statuses(answers: list[httpx.Response]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for answer in answers:
        counts[answer.status_code] = counts.get(answer.status_code, 0) + 1
    return counts


def _rounds(play: Callable[[str], None]) -> None:
    """``play`` on fresh repository names (a new namespace too), within the time budget."""
    deadline = time.monotonic() + ROUND_BUDGET_S
    for _ in range(ROUNDS):
        play(f"race{uuid.uuid4().hex[:10]}/repo")
        assert time.monotonic() < deadline, "the rounds took longer than their budget"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _push_blob(http: httpx.Client, name: str, data: bytes) -> str:
    digest = _digest(data)
    done = http.post(f"/v2/{name}/blobs/uploads/", params={"digest": digest}, content=data)
    assert done.status_code == 201, done.text
    return digest


@pytest.mark.parametrize("clients", [8, 32])
def test_racing_upload_posts_into_a_new_repository_all_start(
    server: RegistryServer, clients: int
) -> None:
    def play(name: str) -> None:
        answers = _race(server, clients, lambda _, http: http.post(f"/v2/{name}/blobs/uploads/"))
        assert _statuses(answers) == {202: clients}, [a.text for a in answers][:3]
        assert len({answer.headers["Location"] for answer in answers}) == clients
        with httpx.Client(base_url=server.base_url, timeout=60, trust_env=False) as http:
            assert _catalog(http).count(name) == 1
            for answer in answers:  # the sessions are done with: below any session cap
                assert http.delete(answer.headers["Location"]).status_code == 204

    _rounds(play)


def test_racing_mounts_into_a_new_repository_all_land(server: RegistryServer) -> None:
    clients = 16
    with httpx.Client(base_url=server.base_url, timeout=60, trust_env=False) as http:
        source = f"source{uuid.uuid4().hex[:10]}/repo"
        layer = f"mounted {source}".encode()
        digest = _push_blob(http, source, layer)

        def play(name: str) -> None:
            answers = _race(
                server,
                clients,
                lambda _, client: client.post(
                    f"/v2/{name}/blobs/uploads/", params={"mount": digest, "from": source}
                ),
            )
            assert _statuses(answers) == {201: clients}, [a.text for a in answers][:3]
            assert _catalog(http).count(name) == 1
            fetched = http.get(f"/v2/{name}/blobs/{digest}")
            assert fetched.status_code == 200 and fetched.content == layer

        _rounds(play)


OCI_INDEX = "application/vnd.oci.image.index.v1+json"
EMPTY_INDEX = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}).encode()


def test_racing_manifest_puts_into_a_new_repository_all_land(server: RegistryServer) -> None:
    """The first request into the repository is the manifest PUT itself (an index with
    no children references nothing that would have to be pushed first)."""
    clients = 16

    def play(name: str) -> None:
        answers = _race(
            server,
            clients,
            lambda index, http: http.put(
                f"/v2/{name}/manifests/v{index % 4}",
                content=EMPTY_INDEX,
                headers={"Content-Type": OCI_INDEX},
            ),
        )
        assert _statuses(answers) == {201: clients}, [a.text for a in answers][:3]
        with httpx.Client(base_url=server.base_url, timeout=60, trust_env=False) as http:
            assert _catalog(http).count(name) == 1
            tags = http.get(f"/v2/{name}/tags/list").json()["tags"]
            assert sorted(tags) == ["v0", "v1", "v2", "v3"]

    _rounds(play)


def test_racing_single_request_pushes_into_a_new_repository_all_land(
    server: RegistryServer,
) -> None:
    """Each racer pushes the same blob with one ``POST ?digest=`` (the first request into
    the repository), then a manifest using it."""
    clients = 16
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.empty.v1+json",
                "digest": _digest(EMPTY_CONFIG),
                "size": len(EMPTY_CONFIG),
            },
            "layers": [],
        }
    ).encode()

    def play(name: str) -> None:
        def push(index: int, http: httpx.Client) -> httpx.Response:
            _push_blob(http, name, EMPTY_CONFIG)
            return http.put(
                f"/v2/{name}/manifests/v{index % 4}",
                content=manifest,
                headers={"Content-Type": OCI_MANIFEST},
            )

        answers = _race(server, clients, push)
        assert _statuses(answers) == {201: clients}, [a.text for a in answers][:3]
        with httpx.Client(base_url=server.base_url, timeout=60, trust_env=False) as http:
            assert _catalog(http).count(name) == 1

    _rounds(play)


def _image_on_base(http: httpx.Client, name: str, base: str, top: str) -> bytes:
    """A Docker image of two layers, the first shared with every image of the round."""
    history = [
        {"created": "2026-01-01T00:00:00Z", "created_by": "/bin/sh -c #(nop) ADD base"},
        {"created": "2026-01-02T00:00:00Z", "created_by": f"/bin/sh -c build {top}"},
    ]
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [_digest(b"base"), _digest(top.encode())]},
            "history": history,
        }
    ).encode()
    layers = [(base, len(f"base {name}")), (_push_blob(http, name, top.encode()), len(top))]
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {
                "mediaType": DOCKER_CONFIG,
                "digest": _push_blob(http, name, config),
                "size": len(config),
            },
            "layers": [
                {"mediaType": LAYER, "digest": digest, "size": size} for digest, size in layers
            ],
        }
    ).encode()


def test_racing_pushes_of_images_on_one_base_all_land(server: RegistryServer) -> None:
    """Their first push into the repository creates the base layer's V1 image: the racers
    meet on its row."""
    clients = 8

    def play(name: str) -> None:
        with httpx.Client(base_url=server.base_url, timeout=60, trust_env=False) as http:
            base = _push_blob(http, name, f"base {name}".encode())
            images = [_image_on_base(http, name, base, f"top {i} {name}") for i in range(clients)]
        answers = _race(
            server,
            clients,
            lambda index, http: http.put(
                f"/v2/{name}/manifests/t{index}",
                content=images[index],
                headers={"Content-Type": DOCKER_MANIFEST},
            ),
        )
        assert _statuses(answers) == {201: clients}, [a.text for a in answers][:3]

    _rounds(play)


def test_racing_pushes_of_one_image_by_tag_and_by_digest_all_land(server: RegistryServer) -> None:
    """A push by tag moves a tag (its transaction locks the repository first), a push by
    digest does not: the racers of both kinds must not deadlock on the image's V1 chain."""
    clients = 8

    def play(name: str) -> None:
        with httpx.Client(base_url=server.base_url, timeout=60, trust_env=False) as http:
            base = _push_blob(http, name, f"base {name}".encode())
            image = _image_on_base(http, name, base, f"top {name}")
        digest = _digest(image)
        answers = _race(
            server,
            clients,
            lambda index, http: http.put(
                f"/v2/{name}/manifests/{f't{index}' if index % 2 else digest}",
                content=image,
                headers={"Content-Type": DOCKER_MANIFEST},
            ),
        )
        assert _statuses(answers) == {201: clients}, [a.text for a in answers][:3]
        assert {answer.headers["Docker-Content-Digest"] for answer in answers} == {digest}

    _rounds(play)
