"""Two `moorage serve` processes sharing PostgreSQL and S3: any worker continues any upload."""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.e2e_clients import (
    ClientConfig,
    RegistryServer,
    Skopeo,
    require_binary,
    run,
    start_registry,
)
from support.e2e_images import FileSpec, OciLayout, layer, seeded_chunks
from support.s3servers import S3Server, unique_prefix

MiB = 1024 * 1024


@pytest.fixture
def shared_config(fresh_postgres_url: str, seaweedfs_s3: S3Server, tmp_path: Path) -> Path:
    """One config for both workers: the same PostgreSQL database and S3 bucket."""
    s3 = seaweedfs_s3.driver_options(unique_prefix())
    config = {
        "database_url": fresh_postgres_url,
        "auto_migrate": False,
        "storage": {"default_location": "s3", "locations": {"s3": {"driver": "s3", **s3}}},
    }
    path = tmp_path / "moorage.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    run(
        [str(Path(sys.executable).parent / "moorage"), "db", "upgrade", "--config", str(path)],
        timeout=120,
    )
    return path


@pytest.fixture
def workers(shared_config: Path, tmp_path: Path) -> Iterator[tuple[RegistryServer, RegistryServer]]:
    args = ["--config", str(shared_config)]
    with (
        start_registry(tmp_path / "a", "moorage", extra_args=args) as first,
        start_registry(tmp_path / "b", "moorage", extra_args=args) as second,
    ):
        yield first, second


def _alternating_upload(
    a: httpx.Client, b: httpx.Client, name: str, seed: int, size: int, chunk: int
) -> str:
    """POST on A, PATCHes alternating A/B with Content-Range, the final PUT on the worker
    that did not send the last PATCH. Returns the digest."""
    hasher = hashlib.sha256()
    started = a.post(f"/v2/{name}/blobs/uploads/")
    assert started.status_code == 202, started.text
    location = started.headers["Location"]
    offset, turn = 0, 0
    clients = (a, b)
    for piece in _pieces(seed, size, chunk):
        hasher.update(piece)
        response = clients[turn % 2].patch(
            location,
            content=piece,
            headers={
                "Content-Range": f"{offset}-{offset + len(piece) - 1}",
                "Content-Type": "application/octet-stream",
            },
        )
        assert response.status_code == 202, response.text
        offset += len(piece)
        assert response.headers["Range"] == f"0-{offset - 1}"
        location = response.headers["Location"]
        turn += 1
    digest = "sha256:" + hasher.hexdigest()
    done = clients[turn % 2].put(location, params={"digest": digest})
    assert done.status_code == 201, done.text
    return digest


def _pieces(seed: int, size: int, chunk: int) -> Iterator[bytes]:
    buffer = b""
    for block in seeded_chunks(seed, size):
        buffer += block
        while len(buffer) >= chunk:
            yield buffer[:chunk]
            buffer = buffer[chunk:]
    if buffer:
        yield buffer


def _streamed_digest(client: httpx.Client, name: str, digest: str) -> tuple[str, int]:
    hasher = hashlib.sha256()
    size = 0
    with client.stream("GET", f"/v2/{name}/blobs/{digest}") as response:
        assert response.status_code == 200
        for data in response.iter_bytes(MiB):
            hasher.update(data)
            size += len(data)
    return "sha256:" + hasher.hexdigest(), size


@pytest.mark.slow
@pytest.mark.parametrize(
    ("size", "chunk"),
    [(1024, 256), (7 * MiB, MiB + 17), (200 * MiB, 8 * MiB)],
    ids=["1KiB", "7MiB", "200MiB"],
)
def test_an_upload_moves_between_workers(
    workers: tuple[RegistryServer, RegistryServer], size: int, chunk: int
) -> None:
    first, second = workers
    name = f"scale/alternate-{size}"
    with (
        httpx.Client(base_url=first.base_url, timeout=300, trust_env=False) as a,
        httpx.Client(base_url=second.base_url, timeout=300, trust_env=False) as b,
    ):
        digest = _alternating_upload(a, b, name, seed=size, size=size, chunk=chunk)
        for client in (a, b):
            assert _streamed_digest(client, name, digest) == (digest, size)
            assert client.head(f"/v2/{name}/blobs/{digest}").headers["Content-Length"] == str(size)


@pytest.mark.slow
def test_skopeo_pushes_through_one_worker_and_pulls_through_the_other(
    workers: tuple[RegistryServer, RegistryServer], tmp_path: Path
) -> None:
    first, second = workers
    layout = OciLayout(tmp_path / "layout")
    image = layout.add_image(
        [
            layer(FileSpec.literal("hello.txt", b"hello from worker A\n")),
            layer(FileSpec("big.bin", 12 * MiB, 3)),
        ],
        labels={"org.example.worker": "a"},
        tag="v1",
    )
    push = Skopeo(ClientConfig.write(tmp_path / "cfg-a", first.host), require_binary("skopeo"))
    pull = Skopeo(ClientConfig.write(tmp_path / "cfg-b", second.host), require_binary("skopeo"))
    push.copy(f"oci:{layout.root}:v1", push.ref("scale/skopeo", "v1"))
    inspected: dict[str, Any] = pull.inspect(pull.ref("scale/skopeo", "v1"))
    assert inspected["Digest"] == image.digest
    assert inspected["Labels"]["org.example.worker"] == "a"
    out = tmp_path / "pulled"
    pull.copy(pull.ref("scale/skopeo", "v1"), f"oci:{out}:v1")
    index = json.loads((out / "index.json").read_text())
    assert index["manifests"][0]["digest"] == image.digest
