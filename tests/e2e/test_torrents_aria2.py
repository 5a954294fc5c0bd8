"""aria2c downloads a blob from its `.torrent` through the web seed alone (issue 15).

A real `moorage serve` (two worker processes, auth on, torrents on) receives a 50 MiB blob in
PATCHes whose boundaries cross the 512 KiB pieces, each on a fresh connection (so on either
worker); aria2c, with no credentials, no tracker, no DHT, no local peer discovery and
loopback only, fetches it from the torrent of a private repository. The file it writes hashes
to the blob's digest, and the torrent's pieces equal an independent SHA-1 over the bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastbencode import bdecode

from support.e2e_clients import RegistryServer, e2e_target, require_binary, start_registry
from support.e2e_images import seeded_chunks

MiB = 1024 * 1024
PIECE = 512 * 1024
SIZE = 50 * MiB + 12_345  # not a multiple of the piece length
CHUNK = 3 * MiB + 1  # every PATCH ends inside a piece
ARIA2_TIMEOUT_S = 180

pytestmark = pytest.mark.skipif(
    e2e_target() == "reference", reason="torrents are Moorage's (Quay's verbs), not Distribution's"
)


def aria2c() -> str:
    try:
        return require_binary("aria2c")
    except FileNotFoundError:
        if os.environ.get("CI"):
            pytest.fail("aria2c is missing (CI is set): apt-get install aria2")
        pytest.skip("aria2c is missing; `.ci/run` installs it (Debian package aria2)")


@pytest.fixture(scope="module")
def torrent_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    base = tmp_path_factory.mktemp("torrents")
    config = base / "moorage.yaml"
    config.write_text(json.dumps({"torrents": {"enabled": True, "piece_length": PIECE}}))
    with start_registry(
        base, extra_args=["--config", str(config), "--workers", "2"], auth=True
    ) as server:
        yield server


def push_in_patches(server: RegistryServer, repo: str, data: bytes) -> str:
    auth = server.credentials
    assert auth is not None
    digest = "sha256:" + hashlib.sha256(data).hexdigest()

    def fresh() -> httpx.Client:  # a new connection each time: any worker may take it
        return httpx.Client(base_url=server.base_url, auth=auth, timeout=60)

    with fresh() as client:
        started = client.post(f"/v2/{repo}/blobs/uploads/")
    assert started.status_code == 202, started.text
    location = started.headers["Location"]
    offset = 0
    while len(data) - offset > CHUNK:
        headers = {"Content-Range": f"{offset}-{offset + CHUNK - 1}"}
        with fresh() as client:
            patched = client.patch(location, content=data[offset : offset + CHUNK], headers=headers)
        assert patched.status_code == 202, patched.text
        location = patched.headers["Location"]
        offset += CHUNK
    with fresh() as client:
        finished = client.put(location, params={"digest": digest}, content=data[offset:])
    assert finished.status_code == 201, finished.text
    return digest


def test_aria2c_downloads_a_private_blob_from_the_web_seed(
    torrent_registry: RegistryServer, tmp_path: Path
) -> None:
    binary = aria2c()
    data = b"".join(seeded_chunks(15, SIZE))
    assert len(data) == SIZE
    repo = "e2e-admin/torrents/private"
    digest = push_in_patches(torrent_registry, repo, data)
    with httpx.Client(
        base_url=torrent_registry.base_url, auth=torrent_registry.credentials, timeout=60
    ) as client:
        response = client.get(f"/c1/torrent/{repo}/blobs/{digest}")
        anonymous = httpx.get(f"{torrent_registry.base_url}/c1/torrent/{repo}/blobs/{digest}")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/x-bittorrent"
    assert anonymous.status_code == 401
    torrent: dict[bytes, Any] = bdecode(response.content)
    info = torrent[b"info"]
    expected = b"".join(
        hashlib.sha1(data[i : i + PIECE]).digest() for i in range(0, len(data), PIECE)
    )
    assert info[b"pieces"] == expected and info[b"length"] == SIZE
    assert info[b"private"] == 1 and b"announce" not in torrent
    torrent_file = tmp_path / "blob.torrent"
    torrent_file.write_bytes(response.content)
    out = tmp_path / "out"
    command = [
        binary,
        "--enable-dht=false",
        "--enable-dht6=false",
        "--bt-enable-lpd=false",
        "--enable-peer-exchange=false",
        "--seed-time=0",
        "--interface=127.0.0.1",
        "--disable-ipv6=true",
        "--no-conf=true",
        "--file-allocation=none",
        "--summary-interval=0",
        "--console-log-level=warn",
        "--timeout=30",
        "--max-tries=3",
        "--bt-stop-timeout=60",  # no byte for a minute: give up rather than wait for peers
        f"--dir={out}",
        str(torrent_file),
    ]
    finished = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=ARIA2_TIMEOUT_S,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert finished.returncode == 0, finished.stdout[-2000:] + finished.stderr[-2000:]
    downloaded = out / info[b"name"].decode()
    assert downloaded.stat().st_size == SIZE
    with downloaded.open("rb") as file:
        assert "sha256:" + hashlib.file_digest(file, "sha256").hexdigest() == digest
