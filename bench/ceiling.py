"""The client's own ceiling: a monolithic push into a null sink (``bench.sink``), so a
ratio near it reads as "limited by the bench client", not by the registry."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx

from bench.client import new_client, push_monolithic
from bench.data import BlobSpec
from bench.model import Measure, size_label, timed
from bench.servers import free_port

MACHINE = "machine"


def client_ceiling(size: int) -> list[Measure]:
    port = free_port()
    sink = subprocess.Popen(
        [sys.executable, "-m", "bench.sink", str(port)], stdin=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                httpx.post(f"http://127.0.0.1:{port}/v2/sink/blobs/uploads/", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or sink.poll() is not None:
                    raise RuntimeError("the null sink did not start") from None
                time.sleep(0.05)
        blob = BlobSpec("ceiling", size)
        with new_client(f"http://127.0.0.1:{port}") as client:
            seconds = min(
                timed(lambda: push_monolithic(client, "sink", blob.chunks(), size, blob.digest))
                for _ in range(2)
            )
    finally:
        sink.terminate()
        sink.wait(timeout=10)
    label = f"client ceiling: monolithic push {size_label(size)} into a null sink"
    return [Measure("client-ceiling", label, "MB/s", MACHINE, size / 1e6 / seconds)]
