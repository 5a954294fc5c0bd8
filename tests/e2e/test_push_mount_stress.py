"""Concurrent pushes, mounts and pulls of shared layers over two workers, bounded in time.

Six client threads, for a fixed number of seconds, push the same small pool of layers
(monolithic, or chunked with the chunks spread over both workers), mount them between
repositories, push manifests that use them and pull them back, on two ``moorage serve``
processes sharing one store: SQLite and a directory, or PostgreSQL and S3 (SeaweedFS). Every
answer must be below 500, and every blob any worker serves must hash to its digest: during the
run and, for every repository and layer, after it.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support.e2e_clients import RegistryServer, run, start_registry
from support.s3servers import S3Server, unique_prefix

MIB = 1 << 20
SECONDS = float(os.environ.get("MOORAGE_STRESS_SECONDS", "12"))
THREADS = 6
REPOSITORIES = [f"stress/r{n}" for n in range(4)]
OCTETS = {"Content-Type": "application/octet-stream"}
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _layer(seed: int, size: int) -> bytes:
    block = hashlib.sha256(str(seed).encode()).digest()
    return (block * (size // len(block) + 1))[:size]


POOL = [_layer(n, size) for n, size in enumerate([3, 10_000, 300_000, MIB + 7, 3 * MIB + 1])]
CONFIG = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers"}}).encode()


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture(params=["sqlite-disk", "postgres-s3"])
def twin_workers(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[RegistryServer, RegistryServer]]:
    args: list[str] = []
    shared_data: Path | None = tmp_path / "shared-data"
    if request.param == "postgres-s3":
        url = request.getfixturevalue("fresh_postgres_url")
        s3: S3Server = request.getfixturevalue("seaweedfs_s3")
        config = {
            "database_url": url,
            "auto_migrate": False,
            "storage": {
                "default_location": "s3",
                "locations": {"s3": {"driver": "s3", **s3.driver_options(unique_prefix())}},
            },
        }
        path = tmp_path / "moorage.yaml"
        path.write_text(json.dumps(config))
        moorage = str(Path(sys.executable).parent / "moorage")
        run([moorage, "db", "upgrade", "--config", str(path)], timeout=120)
        args, shared_data = ["--config", str(path)], None
    with (
        start_registry(tmp_path / "a", "moorage", extra_args=args, data_dir=shared_data) as a,
        start_registry(tmp_path / "b", "moorage", extra_args=args, data_dir=shared_data) as b,
    ):
        yield a, b


class Stress:
    def __init__(self, servers: tuple[RegistryServer, RegistryServer]) -> None:
        self.servers = servers
        self.failures: list[str] = []
        self.counts: dict[str, int] = {}
        self.lock = threading.Lock()

    def note(self, operation: str, response: httpx.Response) -> httpx.Response:
        with self.lock:
            self.counts[operation] = self.counts.get(operation, 0) + 1
            if response.status_code >= 500:
                self.failures.append(f"{operation}: {response.status_code} {response.text[:200]}")
        return response

    def check_served(self, response: httpx.Response, data: bytes, where: str) -> None:
        if response.status_code == 200 and hashlib.sha256(response.content).digest() != (
            hashlib.sha256(data).digest()
        ):
            with self.lock:
                self.failures.append(f"{where}: served bytes that do not hash to the digest")

    def client_loop(self, seed: int, deadline: float) -> None:
        rng = random.Random(seed)
        clients = [httpx.Client(base_url=s.base_url, timeout=60) for s in self.servers]
        try:
            while time.monotonic() < deadline:
                operation = rng.choice(["whole", "chunked", "mount", "manifest", "pull", "pull"])
                getattr(self, operation)(rng, clients)
        finally:
            for client in clients:
                client.close()

    def whole(self, rng: random.Random, clients: list[httpx.Client]) -> None:
        data, repo = rng.choice(POOL), rng.choice(REPOSITORIES)
        url = f"/v2/{repo}/blobs/uploads/?digest={digest_of(data)}"
        self.note("whole", rng.choice(clients).post(url, content=data))

    def chunked(self, rng: random.Random, clients: list[httpx.Client]) -> None:
        data, repo = rng.choice(POOL), rng.choice(REPOSITORIES)
        started = self.note("start", rng.choice(clients).post(f"/v2/{repo}/blobs/uploads/"))
        if started.status_code != 202:
            return
        location, offset = started.headers["Location"], 0
        while offset < len(data):
            piece = data[offset : offset + rng.choice([1000, 65_536, MIB + 3])]
            headers = {**OCTETS, "Content-Range": f"{offset}-{offset + len(piece) - 1}"}
            if (
                self.note(
                    "patch", rng.choice(clients).patch(location, content=piece, headers=headers)
                ).status_code
                != 202
            ):
                return
            offset += len(piece)
        self.note("put", rng.choice(clients).put(f"{location}?digest={digest_of(data)}"))

    def mount(self, rng: random.Random, clients: list[httpx.Client]) -> None:
        data = rng.choice(POOL)
        source, target = rng.sample(REPOSITORIES, 2)
        url = f"/v2/{target}/blobs/uploads/?mount={digest_of(data)}&from={source}"
        response = self.note("mount", rng.choice(clients).post(url))
        if response.status_code == 202:  # not mountable: cancel the session it opened
            self.note("cancel", rng.choice(clients).delete(response.headers["Location"]))

    def manifest(self, rng: random.Random, clients: list[httpx.Client]) -> None:
        repo, client = rng.choice(REPOSITORIES), rng.choice(clients)
        self.note(
            "config",
            client.post(f"/v2/{repo}/blobs/uploads/?digest={digest_of(CONFIG)}", content=CONFIG),
        )
        layers = rng.sample(POOL, 2)
        body = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": digest_of(CONFIG),
                    "size": len(CONFIG),
                },
                "layers": [
                    {
                        "mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": digest_of(layer),
                        "size": len(layer),
                    }
                    for layer in layers
                ],
            }
        ).encode()
        tag = f"t{rng.randrange(4)}"
        response = self.note(
            "manifest",
            rng.choice(clients).put(
                f"/v2/{repo}/manifests/{tag}", content=body, headers={"Content-Type": OCI_MANIFEST}
            ),
        )
        if response.status_code == 201:
            pulled = self.note(
                "manifest-get",
                rng.choice(clients).get(
                    f"/v2/{repo}/manifests/{tag}", headers={"Accept": OCI_MANIFEST}
                ),
            )
            if pulled.status_code == 200:
                manifest = json.loads(pulled.content)
                for layer in manifest["layers"]:
                    got = self.note(
                        "blob-get", rng.choice(clients).get(f"/v2/{repo}/blobs/{layer['digest']}")
                    )
                    if got.status_code != 200:
                        with self.lock:
                            self.failures.append(
                                f"a tagged manifest's layer answers {got.status_code}"
                            )

    def pull(self, rng: random.Random, clients: list[httpx.Client]) -> None:
        data, repo = rng.choice(POOL), rng.choice(REPOSITORIES)
        response = self.note("pull", rng.choice(clients).get(f"/v2/{repo}/blobs/{digest_of(data)}"))
        self.check_served(response, data, f"pull {repo}")


@pytest.mark.slow
def test_concurrent_pushes_mounts_and_pulls_keep_every_blob_true(
    twin_workers: tuple[RegistryServer, RegistryServer],
) -> None:
    stress = Stress(twin_workers)
    deadline = time.monotonic() + SECONDS
    threads = [
        threading.Thread(target=stress.client_loop, args=(seed, deadline))
        for seed in range(THREADS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(SECONDS + 120)
    assert not any(thread.is_alive() for thread in threads)
    assert not stress.failures, stress.failures[:10]
    print("operations:", stress.counts)
    assert sum(stress.counts.values()) > 50, stress.counts
    served = 0
    for server in twin_workers:
        with httpx.Client(base_url=server.base_url, timeout=60) as client:
            for repo in REPOSITORIES:
                for data in POOL:
                    response = client.get(f"/v2/{repo}/blobs/{digest_of(data)}")
                    assert response.status_code in (200, 404), response.text
                    stress.check_served(response, data, f"final {repo}")
                    served += response.status_code == 200
    assert not stress.failures, stress.failures[:10]
    assert served > 0
