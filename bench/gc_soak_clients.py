"""The GC soak's clients: threads speaking the registry API (V2 and /api/v1) over httpx.

Each client owns a few tags in every repository (it is their only writer) and pushes images
that share layers with everyone's (a common pool) plus unique ones, uploading each blob one of
several ways (one POST, POST + PATCHes + PUT, a mount from another repository, or skipped after
a HEAD when an image of its own already links it). It moves, deletes and restores its tags,
deletes manifests by digest, leaves an upload unfinished now and then, and pulls anyone's tags
and digests, each request through either server. Every outcome is checked against the ledger
(``bench.gc_soak_ledger``); anything the ledger cannot explain is a violation.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from bench.gc_soak_ledger import Image, Ledger, TagKey, sha256_digest

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
KiB = 1024
MAX_VIOLATIONS_KEPT = 200


@dataclass(frozen=True)
class Workload:
    """The shape of the load; times in seconds."""

    repositories: tuple[str, ...]
    tags_per_client: int
    time_machine_s: float
    link_expiry_s: float
    margin_s: float = 1.5  # clock slack between the client's intervals and the server's


@dataclass
class Tally:
    """What every client did and saw, shared (under ``lock``)."""

    operations: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)
    violation_count: int = 0
    bytes_pushed: int = 0
    bytes_pulled: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, operation: str, outcome: str = "ok") -> None:
        with self.lock:
            self.operations[operation] += 1
            self.outcomes[f"{operation}:{outcome}"] += 1

    def violation(self, what: str) -> None:
        with self.lock:
            self.violation_count += 1
            if len(self.violations) < MAX_VIOLATIONS_KEPT:
                self.violations.append(f"{time.time():.3f} {what}")

    def add_bytes(self, pushed: int = 0, pulled: int = 0) -> None:
        with self.lock:
            self.bytes_pushed += pushed
            self.bytes_pulled += pulled


def error_code(response: httpx.Response) -> str:
    try:
        errors = response.json().get("errors") or [{}]
        return str(errors[0].get("code", response.status_code))
    except (ValueError, AttributeError):
        return str(response.status_code)


def _describe(response: httpx.Response) -> str:
    return f"{response.request.method} {response.request.url.path} -> {response.status_code} " + (
        response.text[:160].replace("\n", " ")
    )


def random_layer(rng: random.Random) -> bytes:
    size = rng.choice((rng.randint(64, 4 * KiB), rng.randint(4 * KiB, 48 * KiB)))
    if rng.random() < 0.03:
        size = rng.randint(1024 * KiB, 3 * 1024 * KiB)  # a chunked upload of several PATCHes
    return rng.randbytes(size)


class SoakClient:
    def __init__(
        self,
        number: int,
        servers: list[str],
        ledger: Ledger,
        tally: Tally,
        workload: Workload,
        pool: list[str],
        seed: int,
    ) -> None:
        self.number = number
        self.ledger = ledger
        self.tally = tally
        self.workload = workload
        self.pool = pool
        self.rng = random.Random(seed * 1000 + number)  # noqa: S311 - a load, not secrets
        self.http = [httpx.Client(base_url=url, timeout=60, trust_env=False) for url in servers]
        self.keys: list[TagKey] = [
            (repo, f"c{number}-t{k}")
            for repo in workload.repositories
            for k in range(workload.tags_per_client)
        ]
        self.restorable: list[tuple[TagKey, str, float]] = []  # (tag, digest, ended at)
        self.pushed = 0

    def close(self) -> None:
        for client in self.http:
            client.close()

    def server(self) -> httpx.Client:
        return self.rng.choice(self.http)

    # ---------------------------------------------------------------------------------------
    # The loop

    def run(self, stop: threading.Event) -> None:
        operations: list[tuple[Callable[[], None], int]] = [
            (self.push, 30),
            (self.pull_tag, 25),
            (self.pull_digest, 10),
            (self.move_tag, 10),
            (self.delete_tag, 8),
            (self.delete_manifest, 3),
            (self.restore_tag, 8),
            (self.abandon_upload, 1),
        ]
        actions = [action for action, _ in operations]
        weights = [weight for _, weight in operations]
        try:
            while not stop.is_set():
                action = self.rng.choices(actions, weights)[0]
                try:
                    action()
                except httpx.HTTPError as exc:
                    self.tally.count(action.__name__, "transport-error")
                    self.tally.violation(f"c{self.number} {action.__name__}: {exc!r}")
        finally:
            self.close()

    # ---------------------------------------------------------------------------------------
    # Writes

    def _own_live_images(self, repository: str | None = None) -> dict[str, Image]:
        found: dict[str, Image] = {}
        for key in self.keys:
            digest = self.ledger.current(key)
            if digest is not None and (repository is None or key[0] == repository):
                image = self.ledger.image(key[0], digest)
                if image is not None:
                    found[f"{key[0]}@{digest}"] = image
        return found

    def push(self) -> None:
        repository = self.rng.choice(self.workload.repositories)
        layers = self.rng.sample(self.pool, self.rng.randint(1, 3))
        if self.rng.random() < 0.6:
            layers.append(self.ledger.add_blob(random_layer(self.rng)))
        self.pushed += 1
        config = json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "config": {"Labels": {"soak.client": str(self.number), "soak.n": str(self.pushed)}},
                "rootfs": {"type": "layers", "diff_ids": layers},
            }
        ).encode()
        config_digest = self.ledger.add_blob(config)
        started = time.time()
        for digest in (config_digest, *layers):
            if not self._upload_blob(repository, digest):
                self.tally.count("push", "blob-failed")
                return
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
                "layers": [
                    {"mediaType": OCI_LAYER, "digest": d, "size": len(self.ledger.blobs[d])}
                    for d in layers
                ],
            }
        ).encode()
        image = Image(repository, manifest, OCI_MANIFEST, (config_digest, *layers))
        self.ledger.add_image(image)
        key = self.rng.choice([k for k in self.keys if k[0] == repository])
        previous = self.ledger.current(key)
        event = self.ledger.begin(key, time.time(), image.digest)
        response = self.server().put(
            f"/v2/{repository}/manifests/{key[1]}",
            content=manifest,
            headers={"Content-Type": OCI_MANIFEST},
        )
        if response.status_code == 201:
            self.ledger.finish(event, time.time(), image.digest)
            self._ended(key, previous, image.digest)
            self.tally.count("push")
            return
        self.ledger.finish(event, time.time(), self._observe(key))
        if (
            error_code(response) == "MANIFEST_BLOB_UNKNOWN"
            and time.time() - started > self.workload.link_expiry_s - self.workload.margin_s
        ):
            self.tally.count("push", "blob-link-expired")  # the push was slower than the link
            return
        self.tally.count("push", f"failed-{error_code(response)}")
        self.tally.violation(f"c{self.number} manifest push: {_describe(response)}")

    def _upload_blob(self, repository: str, digest: str) -> bool:
        data = self.ledger.blobs[digest]
        way = self.rng.random()
        if way < 0.15 and self._own_holder(digest, repository):
            # An image we tag here links it already: a HEAD is enough, as docker does.
            head = self.server().head(f"/v2/{repository}/blobs/{digest}")
            self.tally.count("blob-head-skip", str(head.status_code))
            if head.status_code == 200:
                return True
            self.tally.violation(f"c{self.number} HEAD of a live blob: {_describe(head)}")
        if way < 0.35:
            return self._mount(repository, digest, data)
        if way < 0.55 or len(data) > 256 * KiB:
            return self._chunked(repository, digest, data)
        response = self.server().post(
            f"/v2/{repository}/blobs/uploads/", params={"digest": digest}, content=data
        )
        return self._blob_done("blob-post", response, len(data))

    def _own_holder(self, digest: str, repository: str) -> bool:
        """True when an image we tag in ``repository`` links ``digest``: ours, so nobody
        removes it while we push."""
        return any(
            digest in image.blobs and image.repository == repository
            for image in self._own_live_images().values()
        )

    def _mount(self, repository: str, digest: str, data: bytes) -> bool:
        sources = [
            image.repository
            for image in self._own_live_images().values()
            if digest in image.blobs and image.repository != repository
        ]
        guaranteed = bool(sources)
        source = (
            sources[0]
            if sources
            else self.rng.choice([r for r in self.workload.repositories if r != repository])
        )
        response = self.server().post(
            f"/v2/{repository}/blobs/uploads/", params={"mount": digest, "from": source}
        )
        if response.status_code == 201:
            self.tally.count("blob-mount", "mounted")
            return True
        if response.status_code != 202:
            self.tally.count("blob-mount", str(response.status_code))
            self.tally.violation(f"c{self.number} mount: {_describe(response)}")
            return False
        if guaranteed:
            self.tally.violation(
                f"c{self.number} mount of {digest[:19]} from {source}, where our tag holds it: 202"
            )
        self.tally.count("blob-mount", "fell-back")
        finished = self.server().put(
            response.headers["Location"], params={"digest": digest}, content=data
        )
        return self._blob_done("blob-mount-upload", finished, len(data))

    def _chunked(self, repository: str, digest: str, data: bytes) -> bool:
        started = self.server().post(f"/v2/{repository}/blobs/uploads/")
        if started.status_code != 202:
            self.tally.violation(f"c{self.number} upload start: {_describe(started)}")
            return False
        location = started.headers["Location"]
        chunk = max(1, len(data) // self.rng.randint(1, 4)) if len(data) < 256 * KiB else 1 << 20
        offset = 0
        while offset < len(data):
            piece = data[offset : offset + chunk]
            patched = self.server().patch(
                location,
                content=piece,
                headers={
                    "Content-Range": f"{offset}-{offset + len(piece) - 1}",
                    "Content-Type": "application/octet-stream",
                },
            )
            if patched.status_code != 202:
                self.tally.violation(f"c{self.number} PATCH: {_describe(patched)}")
                return False
            location = patched.headers["Location"]
            offset += len(piece)
        finished = self.server().put(location, params={"digest": digest})
        return self._blob_done("blob-chunked", finished, len(data))

    def _blob_done(self, operation: str, response: httpx.Response, size: int) -> bool:
        if response.status_code == 201:
            self.tally.count(operation)
            self.tally.add_bytes(pushed=size)
            return True
        self.tally.count(operation, str(response.status_code))
        self.tally.violation(f"c{self.number} {operation}: {_describe(response)}")
        return False

    def _ended(self, key: TagKey, previous: str | None, now_on: str | None) -> None:
        if previous is not None and previous != now_on:
            self.restorable.append((key, previous, time.time()))
            del self.restorable[:-64]

    def _observe(self, key: TagKey) -> str | None:
        """The tag's state as the server has it (after a request of unknown outcome)."""
        for _ in range(5):
            response = self.server().get(
                f"/v2/{key[0]}/manifests/{key[1]}", headers={"Accept": OCI_MANIFEST}
            )
            if response.status_code == 200:
                return sha256_digest(response.content)
            if response.status_code == 404:
                return None
            time.sleep(0.2)
        raise httpx.HTTPError(f"cannot read {key}: {response.status_code}")

    def move_tag(self) -> None:
        live = self._own_live_images()
        key = self.rng.choice(self.keys)
        current = self.ledger.current(key)
        targets = [i for i in live.values() if i.repository == key[0] and i.digest != current]
        if not targets:
            return
        target = self.rng.choice(targets)
        event = self.ledger.begin(key, time.time(), target.digest)
        if self.rng.random() < 0.5:
            response = self.server().put(
                f"/v2/{key[0]}/manifests/{key[1]}",
                content=target.manifest,
                headers={"Content-Type": target.media_type},
            )
            expected = 201
        else:
            response = self.server().put(
                f"/api/v1/repository/{key[0]}/tag/{key[1]}",
                json={"manifest_digest": target.digest},
            )
            expected = 201
        if response.status_code == expected:
            self.ledger.finish(event, time.time(), target.digest)
            self._ended(key, current, target.digest)
            self.tally.count("move-tag")
            return
        self.ledger.finish(event, time.time(), self._observe(key))
        self.tally.count("move-tag", str(response.status_code))
        self.tally.violation(f"c{self.number} move a tag to a live image: {_describe(response)}")

    def delete_tag(self) -> None:
        tagged = [k for k in self.keys if self.ledger.current(k) is not None]
        if not tagged:
            return
        key = self.rng.choice(tagged)
        current = self.ledger.current(key)
        event = self.ledger.begin(key, time.time(), None)
        if self.rng.random() < 0.5:
            response = self.server().delete(f"/api/v1/repository/{key[0]}/tag/{key[1]}")
        else:
            response = self.server().delete(f"/v2/{key[0]}/manifests/{key[1]}")
        if response.status_code in (202, 204):
            self.ledger.finish(event, time.time(), None)
            self._ended(key, current, None)
            self.tally.count("delete-tag")
            return
        self.ledger.finish(event, time.time(), self._observe(key))
        self.tally.count("delete-tag", str(response.status_code))
        self.tally.violation(f"c{self.number} delete a tag: {_describe(response)}")

    def delete_manifest(self) -> None:
        live = list(self._own_live_images().values())
        if not live:
            return
        image = self.rng.choice(live)
        keys = [k for k in self.keys if k[0] == image.repository]
        holding = [k for k in keys if self.ledger.current(k) == image.digest]
        now = time.time()
        self.ledger.mark_deleted(image.repository, image.digest, now)
        events = [self.ledger.begin(k, now, None) for k in holding]
        response = self.server().delete(f"/v2/{image.repository}/manifests/{image.digest}")
        ok = response.status_code == 202
        for key, event in zip(holding, events, strict=True):
            self.ledger.finish(event, time.time(), None if ok else self._observe(key))
        if ok:
            self.tally.count("delete-manifest")
            return
        self.tally.count("delete-manifest", str(response.status_code))
        self.tally.violation(f"c{self.number} delete a live manifest: {_describe(response)}")

    def restore_tag(self) -> None:
        window = self.workload.time_machine_s - self.workload.margin_s
        now = time.time()
        candidates = [
            entry
            for entry in self.restorable
            if self.ledger.deleted_since(entry[0][0], entry[1]) == float("inf")
            and self.ledger.current(entry[0]) != entry[1]
        ]
        fresh = [entry for entry in candidates if now - entry[2] < window]
        pool = fresh if fresh and self.rng.random() < 0.7 else candidates
        if not pool:
            return
        key, digest, ended = self.rng.choice(pool)
        current = self.ledger.current(key)
        started = time.time()
        within = started - ended < window
        event = self.ledger.begin(key, started, digest)
        response = self.server().post(
            f"/api/v1/repository/{key[0]}/tag/{key[1]}/restore",
            json={"manifest_digest": digest},
        )
        if response.status_code == 200:
            self.ledger.finish(event, time.time(), digest)
            self._ended(key, current, digest)
            self.tally.count("restore", "restored" if within else "restored-late")
            self._pull_own(key, digest)  # restored content must be whole
            return
        self.ledger.finish(event, time.time(), self._observe(key))
        if response.status_code == 404 and not within:
            self.tally.count("restore", "expired")
            return
        self.tally.count("restore", str(response.status_code))
        self.tally.violation(
            f"c{self.number} restore {started - ended:.1f} s after the tag left: "
            + _describe(response)
        )

    def abandon_upload(self) -> None:
        repository = self.rng.choice(self.workload.repositories)
        started = self.server().post(f"/v2/{repository}/blobs/uploads/")
        if started.status_code != 202:
            self.tally.count("abandon-upload", str(started.status_code))
            self.tally.violation(f"c{self.number} upload start: {_describe(started)}")
            return
        piece = self.rng.randbytes(self.rng.randint(1, 8 * KiB))
        patched = self.server().patch(
            started.headers["Location"],
            content=piece,
            headers={"Content-Range": f"0-{len(piece) - 1}"},
        )
        self.tally.count("abandon-upload", str(patched.status_code))

    # ---------------------------------------------------------------------------------------
    # Reads

    def pull_tag(self) -> None:
        with self.ledger.lock:
            keys = list(self.ledger.tags)
        if not keys:
            return
        key = self.rng.choice(keys)
        start = time.time()
        response = self.server().get(
            f"/v2/{key[0]}/manifests/{key[1]}", headers={"Accept": OCI_MANIFEST}
        )
        allowed = self.ledger.allowed(key, start, time.time())
        if response.status_code == 404:
            if None in allowed:
                self.tally.count("pull-tag", "gone")
            else:
                self.tally.count("pull-tag", "live-missing")
                self.tally.violation(f"c{self.number} pull of tagged {key}: {_describe(response)}")
            return
        if response.status_code != 200:
            self.tally.count("pull-tag", str(response.status_code))
            self.tally.violation(f"c{self.number} pull {key}: {_describe(response)}")
            return
        digest = sha256_digest(response.content)
        if digest not in allowed or response.headers.get("Docker-Content-Digest") != digest:
            self.tally.count("pull-tag", "wrong-manifest")
            self.tally.violation(f"c{self.number} {key} answered {digest}, allowed {allowed}")
            return
        self._pull_blobs(key[0], digest, start, "pull-tag")

    def pull_digest(self) -> None:
        with self.ledger.lock:
            images = list(self.ledger.images.values())
        if not images:
            return
        image = self.rng.choice(images)
        start = time.time()
        response = self.server().get(
            f"/v2/{image.repository}/manifests/{image.digest}", headers={"Accept": OCI_MANIFEST}
        )
        if response.status_code == 404:
            if self._may_be_gone(image, start):
                self.tally.count("pull-digest", "gone")
            else:
                self.tally.count("pull-digest", "live-missing")
                self.tally.violation(f"c{self.number} pull of live digest: {_describe(response)}")
            return
        if response.status_code != 200 or response.content != image.manifest:
            self.tally.count("pull-digest", f"bad-{response.status_code}")
            self.tally.violation(f"c{self.number} pull by digest: {_describe(response)}")
            return
        self._pull_blobs(image.repository, image.digest, start, "pull-digest")

    def _may_be_gone(self, image: Image, start: float) -> bool:
        end = time.time()
        if self.ledger.deleted_since(image.repository, image.digest) <= end:
            return True
        return not self.ledger.live(image.repository, image.digest, start, end)

    def _pull_blobs(self, repository: str, digest: str, start: float, operation: str) -> bool:
        image = self.ledger.image(repository, digest)
        if image is None:
            self.tally.violation(f"c{self.number} {repository}@{digest}: not an image we pushed")
            return False
        for blob in image.blobs:
            response = self.server().get(f"/v2/{repository}/blobs/{blob}")
            if response.status_code == 404:
                if self._may_be_gone(image, start):
                    self.tally.count(operation, "blob-gone")
                    return False
                self.tally.count(operation, "live-blob-missing")
                self.tally.violation(
                    f"c{self.number} {error_code(response)} for live {repository}@{digest[:19]}"
                    f" layer {blob[:19]}"
                )
                return False
            if response.status_code != 200 or sha256_digest(response.content) != blob:
                self.tally.count(operation, f"blob-bad-{response.status_code}")
                self.tally.violation(f"c{self.number} blob {blob[:19]}: {_describe(response)}")
                return False
            self.tally.add_bytes(pulled=len(response.content))
        self.tally.count(operation)
        return True

    def _pull_own(self, key: TagKey, digest: str) -> None:
        """A tag only we change, right after we set it: it must pull whole."""
        start = time.time()
        response = self.server().get(
            f"/v2/{key[0]}/manifests/{key[1]}", headers={"Accept": OCI_MANIFEST}
        )
        if response.status_code != 200 or sha256_digest(response.content) != digest:
            self.tally.violation(f"c{self.number} restored {key} pulls: {_describe(response)}")
            return
        self._pull_blobs(key[0], digest, start, "pull-restored")
