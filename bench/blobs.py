"""Blob workloads: monolithic push, chunked push, concurrent pushers, pull."""

from __future__ import annotations

import statistics
from functools import partial

import httpx

from bench.client import (
    blob_exists,
    new_client,
    pull_sized,
    push_chunked,
    push_monolithic,
    verify_pull,
)
from bench.data import BlobSpec
from bench.model import Measure, Plan, in_threads, size_label, timed
from bench.servers import Server

REPO = "bench/blobs"


def mono_blob(run: int, size: int, rep: int) -> BlobSpec:
    return BlobSpec(f"mono-{run}-{size}-{rep}", size)


def _push(client: httpx.Client, blob: BlobSpec) -> None:
    push_monolithic(client, REPO, blob.chunks(), blob.size, blob.digest)


def _rate(size: int, seconds: float) -> float:
    return size / 1e6 / seconds


def push_mono(servers: list[Server], plan: Plan, run: int) -> list[Measure]:
    """POST + one streamed PUT ?digest=; the median over the repetitions of a size."""
    out = []
    for size in plan.mono_sizes:
        blobs = [mono_blob(run, size, rep) for rep in range(plan.repeats(size))]
        for blob in blobs:
            _ = blob.digest  # hashed before any timing
        for server in servers:
            with new_client(server.base_url, server.authorization) as client:
                rates = [_rate(b.size, timed(partial(_push, client, b))) for b in blobs]
            label = f"push monolithic {size_label(size)}"
            key = f"push-mono-{size_label(size)}"
            out.append(Measure(key, label, "MB/s", server.name, statistics.median(rates)))
    return out


def push_chunk(servers: list[Server], plan: Plan, run: int) -> list[Measure]:
    """POST, PATCHes of ``plan.chunk`` bytes with Content-Range, PUT ?digest=."""
    blob = BlobSpec(f"chunked-{run}", plan.chunked_size)
    _ = blob.digest
    out = []
    label = f"push chunked {size_label(blob.size)} ({size_label(plan.chunk)} PATCHes)"
    key = f"push-chunked-{size_label(blob.size)}"
    for server in servers:
        with new_client(server.base_url, server.authorization) as client:
            seconds = timed(partial(push_chunked, client, REPO, blob, plan.chunk))
        out.append(Measure(key, label, "MB/s", server.name, _rate(blob.size, seconds)))
    return out


def push_concurrent(servers: list[Server], plan: Plan, run: int) -> list[Measure]:
    """``plan.concurrent`` threads, one client each, each pushing its own blob at once."""
    blobs = [BlobSpec(f"conc-{run}-{i}", plan.concurrent_size) for i in range(plan.concurrent)]
    for blob in blobs:
        _ = blob.digest
    out = []
    label = f"{plan.concurrent} concurrent pushers x {size_label(plan.concurrent_size)}"
    total = plan.concurrent * plan.concurrent_size
    for server in servers:
        clients = [new_client(server.base_url, server.authorization) for _ in blobs]
        try:
            actions = [partial(_push, c, b) for c, b in zip(clients, blobs, strict=True)]
            seconds = timed(partial(in_threads, actions))
        finally:
            for client in clients:
                client.close()
        out.append(Measure("push-concurrent", label, "MB/s", server.name, _rate(total, seconds)))
    return out


def pull(servers: list[Server], plan: Plan, run: int) -> list[Measure]:
    """GET the monolithic blobs (pushed untimed if the push workload did not run); each is
    then pulled once more, untimed, and its SHA-256 checked."""
    out = []
    for size in plan.mono_sizes:
        blobs = [mono_blob(run, size, rep) for rep in range(plan.repeats(size))]
        for server in servers:
            with new_client(server.base_url, server.authorization) as client:
                for blob in blobs:
                    if not blob_exists(client, REPO, blob.digest):
                        _push(client, blob)
                rates = [
                    _rate(b.size, timed(partial(pull_sized, client, REPO, b.digest, b.size)))
                    for b in blobs
                ]
                for blob in blobs:  # the content, checked outside the timed pulls
                    verify_pull(client, REPO, blob.digest, blob.size)
            label = f"pull {size_label(size)}"
            out.append(
                Measure(
                    f"pull-{size_label(size)}", label, "MB/s", server.name, statistics.median(rates)
                )
            )
    return out
