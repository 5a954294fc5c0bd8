"""Whole-image pushes (50 small layers + config + manifest) and the image the latency
workloads read."""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from functools import partial

from bench.client import MEDIA_CONFIG, MEDIA_LAYER, MEDIA_MANIFEST, BenchError
from bench.data import KIB, MIB, BlobSpec, small_blob
from bench.lean import LeanClient, Reply
from bench.model import Measure, Plan, in_threads, timed
from bench.servers import Server

MIN_LAYER, MAX_LAYER = 4 * KIB, MIB


def layer_sizes(count: int, seed: int = 50) -> list[int]:
    """Log-uniform sizes in [4 KiB, 1 MiB], the same for every image."""
    rng = random.Random(seed)  # noqa: S311 - not for security
    low, high = math.log(MIN_LAYER), math.log(MAX_LAYER)
    return [int(math.exp(rng.uniform(low, high))) for _ in range(count)]


@dataclass(frozen=True)
class Image:
    layers: list[tuple[bytes, str]]  # small layers are built in memory: at most 1 MiB each
    config: tuple[bytes, str]
    manifest: bytes


def build_image(salt: str, sizes: list[int]) -> Image:
    layers = [
        small_blob(b"".join(BlobSpec(f"{salt}-{i}", s).chunks())) for i, s in enumerate(sizes)
    ]
    config_doc = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": ["PATH=/usr/bin"], "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [digest for _, digest in layers]},
        "history": [{"created_by": f"RUN step {i} # {salt}"} for i in range(len(layers))],
    }
    config = small_blob(json.dumps(config_doc, sort_keys=True).encode())
    manifest_doc = {
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": {"mediaType": MEDIA_CONFIG, "digest": config[1], "size": len(config[0])},
        "layers": [
            {"mediaType": MEDIA_LAYER, "digest": digest, "size": len(data)}
            for data, digest in layers
        ],
    }
    return Image(layers, config, json.dumps(manifest_doc, indent=3).encode())


def _expect(reply: Reply, what: str, *codes: int) -> Reply:
    if reply.status not in codes:
        raise BenchError(f"{what} -> {reply.status}: {reply.body[:300]!r}")
    return reply


def push_blob(client: LeanClient, repo: str, data: bytes, digest: str) -> None:
    """HEAD the blob; if missing, POST a session and PUT ?digest= with the bytes."""
    head = _expect(client.request("HEAD", f"/v2/{repo}/blobs/{digest}"), "HEAD blob", 200, 404)
    if head.status == 200:
        return
    started = _expect(client.request("POST", f"/v2/{repo}/blobs/uploads/"), "POST upload", 202)
    location = client.resolve(started.headers["location"])
    target = location + ("&" if "?" in location else "?") + "digest=" + digest
    headers = {"Content-Type": "application/octet-stream"}
    _expect(client.request("PUT", target, data, headers), f"PUT blob {digest}", 201)


def push_image(client: LeanClient, repo: str, image: Image, tag: str) -> str:
    """What a client does: HEAD each blob, upload the missing ones, then PUT the manifest."""
    for data, digest in [*image.layers, image.config]:
        push_blob(client, repo, data, digest)
    return put_manifest(client, repo, tag, image.manifest)


def put_manifest(client: LeanClient, repo: str, reference: str, body: bytes) -> str:
    """The digest the registry answered (empty if it sent none)."""
    headers = {"Content-Type": MEDIA_MANIFEST}
    reply = client.request("PUT", f"/v2/{repo}/manifests/{reference}", body, headers)
    return _expect(reply, "PUT manifest", 201).headers.get("docker-content-digest", "")


def _push_series(client: LeanClient, repos: list[str], series: list[Image]) -> None:
    for repo, image in zip(repos, series, strict=True):
        push_image(client, repo, image, "v1")


def push_images(servers: list[Server], plan: Plan, run: int) -> list[Measure]:
    """``parallel`` clients at once, each pushing its images one after the other."""
    sizes = layer_sizes(plan.layers)
    out = []
    shapes = [(1, plan.images_sequential), (plan.images_parallel, plan.images_per_parallel_client)]
    for parallel, each in shapes:
        names = [
            [f"bench/img-{run}-{parallel}-{p}-{i}" for i in range(each)] for p in range(parallel)
        ]
        series = [[build_image(name, sizes) for name in row] for row in names]
        label = f"image push, {plan.layers} layers, {parallel} in parallel"
        for server in servers:
            clients = [LeanClient(server.base_url, server.authorization) for _ in range(parallel)]
            try:
                actions = [
                    partial(_push_series, c, names[p], series[p]) for p, c in enumerate(clients)
                ]
                seconds = timed(partial(in_threads, actions))
            finally:
                for client in clients:
                    client.close()
            out.append(
                Measure(
                    f"image-push-p{parallel}",
                    label,
                    "images/s",
                    server.name,
                    parallel * each / seconds,
                )
            )
    return out


@dataclass(frozen=True)
class Seeded:
    """The image the latency workloads read, the same bytes in both registries."""

    repo: str
    tag: str
    manifest_digest: str
    layer_digest: str


def seed_latency_image(servers: list[Server], repo: str = "bench/latency") -> Seeded:
    image = build_image("latency", layer_sizes(3, seed=3))
    digest = small_blob(image.manifest)[1]
    tag = "latest"
    for server in servers:
        with LeanClient(server.base_url, server.authorization) as client:
            answered = push_image(client, repo, image, tag)
            if answered and answered != digest:
                raise RuntimeError(f"{server.name} answered digest {answered}, expected {digest}")
            for extra in range(1, 10):  # a few more tags so tags/list is not trivial
                put_manifest(client, repo, f"v{extra}", image.manifest)
    return Seeded(repo, tag, digest, image.layers[0][1])
