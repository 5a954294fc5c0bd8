"""Pushing then pulling a 1 GiB blob keeps the server's peak RSS under 150 MB.

Plain HTTP with httpx, streamed both ways: POST an upload session, PATCH a chunked body generated
on the fly (never held in memory), PUT ``?digest=``, then GET streaming and hashing. The bound is
on memory, read from /proc (VmHWM, the kernel's peak-RSS mark, summed over the server process and
its children), not on time. The test starts its own server so that nothing else it served counts.
"""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support.e2e_clients import PeakMemorySampler, RegistryServer, start_registry
from support.e2e_images import MiB

BLOB_SIZE = 1024 * MiB
PEAK_RSS_LIMIT_BYTES = 150 * 1000 * 1000  # "under 150 MB"
PIECE = 1 * MiB

pytestmark = pytest.mark.slow


def _blob_pieces(size: int, hasher: hashlib._Hash) -> Iterator[bytes]:
    """``size`` bytes, generated piece by piece: a random block with a per-piece counter."""
    block = random.Random(1024).randbytes(PIECE)
    sent = 0
    counter = 0
    while sent < size:
        n = min(PIECE, size - sent)
        piece = (counter.to_bytes(8, "big") + block[8:])[:n]
        hasher.update(piece)
        sent += n
        counter += 1
        yield piece


def _absolute(base_url: str, location: str) -> str:
    return location if location.startswith("http") else base_url + location


@pytest.fixture
def own_registry(tmp_path: Path, target: str) -> Iterator[RegistryServer]:
    if not os.path.exists("/proc/self/status"):
        pytest.skip("needs /proc")
    with start_registry(tmp_path / "registry", target) as server:
        yield server


def test_one_gib_blob_push_and_pull_stays_under_150_mb(own_registry: RegistryServer) -> None:
    server = own_registry
    repo = "e2e/memory/big-blob"
    timeout = httpx.Timeout(connect=10, read=300, write=300, pool=10)
    with (
        PeakMemorySampler(server.pid) as memory,
        httpx.Client(base_url=server.base_url, timeout=timeout, trust_env=False) as http,
    ):
        started = http.post(f"/v2/{repo}/blobs/uploads/")
        assert started.status_code == 202, started.text
        upload_url = _absolute(server.base_url, started.headers["Location"])

        sent_hash = hashlib.sha256()
        # An iterator body has no length: httpx sends it chunked (Transfer-Encoding: chunked).
        patched = http.patch(
            upload_url,
            content=_blob_pieces(BLOB_SIZE, sent_hash),
            headers={"Content-Type": "application/octet-stream"},
        )
        assert patched.status_code == 202, patched.text
        assert patched.headers["Range"] == f"0-{BLOB_SIZE - 1}"
        digest = "sha256:" + sent_hash.hexdigest()

        # Keep the Location's own query (Distribution signs its upload state there).
        commit_url = httpx.URL(_absolute(server.base_url, patched.headers["Location"]))
        committed = http.put(commit_url.copy_merge_params({"digest": digest}))
        assert committed.status_code == 201, committed.text
        assert committed.headers["Docker-Content-Digest"] == digest

        head = http.head(f"/v2/{repo}/blobs/{digest}")
        assert head.status_code == 200
        assert int(head.headers["Content-Length"]) == BLOB_SIZE

        received_hash = hashlib.sha256()
        received = 0
        with http.stream("GET", f"/v2/{repo}/blobs/{digest}") as response:
            assert response.status_code == 200
            assert int(response.headers["Content-Length"]) == BLOB_SIZE
            for piece in response.iter_raw(PIECE):
                received_hash.update(piece)
                received += len(piece)
        assert received == BLOB_SIZE
        assert "sha256:" + received_hash.hexdigest() == digest

    peak_bytes = memory.total_kib * 1024
    processes = len(memory.peak_hwm_kib)
    print(f"{server.target}: peak RSS {peak_bytes / 1e6:.1f} MB over {processes} process(es)")
    per_process = {pid: f"{kib / 1024:.1f} MiB" for pid, kib in memory.peak_hwm_kib.items()}
    assert peak_bytes < PEAK_RSS_LIMIT_BYTES, (
        f"{server.target} peak RSS {peak_bytes / 1e6:.1f} MB ≥ 150 MB (VmHWM per process: "
        f"{per_process})"
    )
