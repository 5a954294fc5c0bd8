"""A registry for GC tests: the real model (SQLite or PostgreSQL), the real services and
storage (filesystem or S3), a clock that moves when told, and helpers that push, pull and
count what is stored."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from moorage.db import tables as t
from moorage.db.engine import Database, create_database_engine
from moorage.db.migrate import upgrade
from moorage.domain.media_types import OCI_IMAGE_INDEX, OCI_IMAGE_MANIFEST
from moorage.domain.records import RepositoryReference
from moorage.model.interface.maintenance import GcWindows
from moorage.model.sql import SqlRegistryModel
from moorage.services.gc import GarbageCollector, GcReport, GcSettings
from moorage.services.registry import RegistryServices, build_services
from moorage.services.tag_admin import TagAdmin
from moorage.storage import StorageDriver, StorageLocations

LAYER = "application/vnd.oci.image.layer.v1.tar"
CONFIG = "application/vnd.oci.image.config.v1+json"
WINDOW_S = 3600  # every namespace's time machine
LINK_S = 600  # upload/mount links
TEMP_TAG_S = 300  # a manifest pushed by digest
ZERO = GcWindows(blob_grace_ms=0, manifest_grace_ms=0, tag_grace_ms=0)
# Every table GC deletes from (the baseline compares them all).
COUNTED = (
    "repository",
    "tag",
    "manifest",
    "manifest_blob",
    "manifest_child",
    "manifest_label",
    "label",
    "legacy_image",
    "manifest_legacy_image",
    "blob",
    "blob_placement",
    "uploaded_blob",
    "blob_upload",
    "torrent_info",
    "derived_image",
    "gc_candidate",
    "gc_pending_delete",
)


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Clock:
    def __init__(self) -> None:
        self.now = time.time_ns() // 1_000_000

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * 1000)


@dataclass
class World:
    model: SqlRegistryModel
    locations: StorageLocations
    clock: Clock
    services: RegistryServices = field(init=False)
    tags: TagAdmin = field(init=False)

    def __post_init__(self) -> None:
        from moorage.services.manifests import ManifestSettings
        from moorage.services.uploads import UploadSettings

        self.services = build_services(
            self.model,
            self.locations,
            uploads=UploadSettings(blob_link_expiration_s=LINK_S),
            manifests=ManifestSettings(temp_tag_expiration_s=TEMP_TAG_S),
        )
        self.tags = TagAdmin(self.model)

    # -- GC ------------------------------------------------------------------------------

    def collector(
        self,
        windows: GcWindows = ZERO,
        batch: int = 500,
        upload_max_age: timedelta = timedelta(days=2),
    ) -> GarbageCollector:
        return GarbageCollector(
            self.model, self.locations, GcSettings(windows, batch, upload_max_age)
        )

    def gc(self, windows: GcWindows = ZERO, *, dry_run: bool = False) -> GcReport:
        return self.collector(windows).run_once(dry_run=dry_run)

    def pass_windows(self) -> None:
        """Past every time machine, link, temp tag and default grace."""
        self.clock.advance(WINDOW_S + LINK_S + TEMP_TAG_S + 3600)

    # -- content -------------------------------------------------------------------------

    def repository(self, name: str) -> RepositoryReference:
        return self.services.repositories.for_write(name)

    def blob(self, repo: RepositoryReference, data: bytes) -> str:
        digest = sha256(data)
        self.services.uploads.upload_whole(repo, digest, [data], len(data))
        return digest

    def image(
        self, repo: RepositoryReference, tag: str | None, layers: list[bytes], *, seed: str = ""
    ) -> tuple[str, list[str]]:
        """Pushes the blobs and an OCI image manifest (by tag, or by digest with None):
        (manifest digest, [config digest, layer digests...])."""
        config = json.dumps({"architecture": "amd64", "os": "linux", "seed": seed}).encode()
        digests = [self.blob(repo, config)] + [self.blob(repo, layer) for layer in layers]
        body = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_IMAGE_MANIFEST,
                "config": {"mediaType": CONFIG, "digest": digests[0], "size": len(config)},
                "layers": [
                    {"mediaType": LAYER, "digest": sha256(layer), "size": len(layer)}
                    for layer in layers
                ],
            }
        ).encode()
        digest = sha256(body)
        self.services.manifests.push(repo, tag or digest, body, OCI_IMAGE_MANIFEST)
        return digest, digests

    def index(self, repo: RepositoryReference, tag: str | None, children: list[str]) -> str:
        entries = []
        for number, child in enumerate(children):
            manifest = self.model.lookup_manifest_by_digest(repo, child, allow_dead=True)
            assert manifest is not None
            entries.append(
                {
                    "mediaType": manifest.media_type,
                    "digest": child,
                    "size": len(manifest.internal_manifest_bytes),
                    "platform": {"os": "linux", "architecture": f"arch{number}"},
                }
            )
        body = json.dumps(
            {"schemaVersion": 2, "mediaType": OCI_IMAGE_INDEX, "manifests": entries}
        ).encode()
        digest = sha256(body)
        self.services.manifests.push(repo, tag or digest, body, OCI_IMAGE_INDEX)
        return digest

    def referrer(self, repo: RepositoryReference, subject: str, seed: str = "") -> str:
        manifest = self.model.lookup_manifest_by_digest(repo, subject, allow_dead=True)
        assert manifest is not None
        empty = b"{}"
        sbom = f"sbom {seed}".encode()
        self.blob(repo, empty)
        self.blob(repo, sbom)
        body = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_IMAGE_MANIFEST,
                "artifactType": "application/vnd.example.sbom",
                "config": {
                    "mediaType": "application/vnd.oci.empty.v1+json",
                    "digest": sha256(empty),
                    "size": 2,
                },
                "layers": [{"mediaType": LAYER, "digest": sha256(sbom), "size": len(sbom)}],
                "subject": {
                    "mediaType": manifest.media_type,
                    "digest": subject,
                    "size": len(manifest.internal_manifest_bytes),
                },
            }
        ).encode()
        digest = sha256(body)
        self.services.manifests.push(repo, digest, body, OCI_IMAGE_MANIFEST)
        return digest

    # -- reading back ----------------------------------------------------------------------

    def pull_blob(self, repo: RepositoryReference, digest: str) -> bytes:
        """The blob's bytes as a pull serves them, checked against the digest."""
        data = b"".join(self.services.blobs.content(repo, digest).chunks())
        assert sha256(data) == digest, f"{digest} served bytes hashing to {sha256(data)}"
        return data

    def pull(self, repo: RepositoryReference, reference: str) -> list[str]:
        """Pulls a manifest (a tag or digest) and every blob it names (children too)."""
        body = self.services.manifests.get(repo, reference, ("*/*",)).content
        document = json.loads(body)
        pulled = []
        for child in document.get("manifests", []):
            pulled += self.pull(repo, child["digest"])
        for descriptor in [document.get("config"), *document.get("layers", [])]:
            if descriptor is not None:
                self.pull_blob(repo, descriptor["digest"])
                pulled.append(descriptor["digest"])
        return pulled

    def counts(self) -> dict[str, int]:
        with self.model.database.read() as conn:
            return {
                name: int(
                    conn.execute(
                        select(func.count()).select_from(t.metadata.tables[name])
                    ).scalar_one()
                )
                for name in COUNTED
            }

    def stored(self) -> dict[str, set[str]]:
        """Object keys per location (blobs and derived objects; sessions apart)."""
        return {
            name: set(driver.list("blobs")) | set(driver.list("derived"))
            for name, driver in self.locations.drivers.items()
        }

    def stored_blob_digests(self) -> set[str]:
        found = set()
        for keys in self.stored().values():
            for key in keys:
                _, algorithm, _, hex_digest = key.split("/")
                found.add(f"{algorithm}:{hex_digest}")
        return found


@contextmanager
def open_world(url: str, drivers: dict[str, StorageDriver]) -> Iterator[World]:
    upgrade(url)
    engine = create_database_engine(url)
    clock = Clock()
    model = SqlRegistryModel(
        Database(engine),
        clock=clock,
        locations=tuple(drivers),
        default_removed_tag_expiration_s=WINDOW_S,
    )
    try:
        yield World(model, StorageLocations(drivers, next(iter(drivers))), clock)
    finally:
        model.close_digest_locks()
        engine.dispose()


def snapshot(world: World) -> dict[str, Any]:
    """Every row of every GC table and every stored object: a dry run must leave it equal."""
    with world.model.database.read() as conn:
        rows = {
            name: sorted(
                tuple(str(v) for v in row)
                for row in conn.execute(select(t.metadata.tables[name])).all()
            )
            for name in COUNTED
        }
    return {"rows": rows, "stored": world.stored()}
