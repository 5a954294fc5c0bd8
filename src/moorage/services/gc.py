"""The garbage collector: one cycle of phases, each in bounded batches (docs/gc.md).

Leftover objects of an interrupted cycle, repositories marked for deletion, tags past their
time-machine window, manifests and legacy images nothing keeps, expired links, blobs
nothing references (rows, then bytes in every location), expired upload sessions. Every
step commits on its own, so a cycle killed anywhere is finished by the next one. A dry run
walks the same rules over the same rows and writes nothing.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from moorage.model.interface import BlobUploads, Maintenance
from moorage.model.interface.maintenance import (
    GarbageCollection,
    GcFreed,
    GcGone,
    GcObject,
    GcWindows,
)
from moorage.observability import get_logger
from moorage.services.cleanup import UploadCleaner
from moorage.storage import StorageLocations, keys

log = get_logger(__name__)
Progress = Callable[[str, int], None]  # (phase, items done in it so far)
# Passes over the queue per cycle: each pass takes what the previous one made candidates.
MAX_PASSES = 64


class GcStore(GarbageCollection, Maintenance, BlobUploads, Protocol):
    """What the collector reads and deletes, upload sessions included."""


@dataclass(frozen=True, slots=True)
class GcSettings:
    windows: GcWindows
    batch: int = 500
    upload_max_age: timedelta = timedelta(days=2)


@dataclass(frozen=True, slots=True)
class GcReport:
    """What a cycle deleted (a dry run: would delete)."""

    dry_run: bool
    repositories: int = 0
    tags: int = 0
    manifests: int = 0
    legacy_images: int = 0
    links: int = 0
    blobs: int = 0
    bytes: int = 0
    bytes_by_location: dict[str, int] = field(default_factory=dict)
    blobs_by_location: dict[str, int] = field(default_factory=dict)
    objects: int = 0  # storage objects deleted (left over from before included)
    uploads: int = 0  # expired upload sessions (with their data)
    upload_orphans: int = 0  # session data without a record
    busy: int = 0  # blobs skipped: a push or another GC held them (next cycle)
    seconds: float = 0.0


@dataclass
class _Tally:
    dry_run: bool
    counts: dict[str, int] = field(default_factory=dict)
    bytes_by_location: dict[str, int] = field(default_factory=dict)
    blobs_by_location: dict[str, int] = field(default_factory=dict)

    def add(self, name: str, amount: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + amount

    def placed(self, objects: Iterable[GcObject]) -> None:
        for item in objects:
            where = item.location_name
            self.bytes_by_location[where] = self.bytes_by_location.get(where, 0) + item.size
            self.blobs_by_location[where] = self.blobs_by_location.get(where, 0) + 1

    def report(self, seconds: float) -> GcReport:
        return GcReport(
            dry_run=self.dry_run,
            bytes_by_location=dict(sorted(self.bytes_by_location.items())),
            blobs_by_location=dict(sorted(self.blobs_by_location.items())),
            seconds=round(seconds, 3),
            **self.counts,
        )


def object_key(item: GcObject) -> str:
    if item.content_addressed and item.digest:
        return keys.blob_key(item.digest)
    return keys.derived_key(item.blob_uuid)


class GarbageCollector:
    def __init__(
        self,
        model: GcStore,
        locations: StorageLocations,
        settings: GcSettings,
    ) -> None:
        self.model, self.locations, self.settings = model, locations, settings
        self.cleaner = UploadCleaner(model, locations, settings.upload_max_age)

    def preview(self) -> GcReport:
        """What the next cycle would free, deleting nothing (``storage usage`` shows it)."""
        return self.run_once(dry_run=True)

    def run_once(self, *, dry_run: bool = False, progress: Progress | None = None) -> GcReport:
        started = time.monotonic()
        tally = _Tally(dry_run)
        notify = progress or (lambda _phase, _done: None)
        if dry_run:
            self._dry_cycle(tally, notify)
        else:
            self._cycle(tally, notify)
        report = tally.report(time.monotonic() - started)
        if not dry_run and (report.blobs or report.manifests or report.tags or report.objects):
            log.info("garbage collected", **{k: v for k, v in _loggable(report).items() if v})
        return report

    # -- a real cycle --------------------------------------------------------------------

    def _cycle(self, tally: _Tally, notify: Progress) -> None:
        windows, batch = self.settings.windows, self.settings.batch
        self._leftover_objects(tally, notify)
        self._repositories(tally, notify)
        after: tuple[int, int] | None = None
        while expired := self.model.gc_expired_tags(windows, after, batch):
            freed = self.model.gc_purge_tags(
                [tag_id for _, tag_id in expired], windows, dry_run=False
            )
            tally.add("tags", freed.tags)
            notify("tags", tally.counts.get("tags", 0))
            after = expired[-1]
        self._drain("manifest", "manifests", self.model.gc_collect_manifest, tally, notify)
        self._drain(
            "legacy_image", "legacy_images", self.model.gc_collect_legacy_image, tally, notify
        )
        while (links := self.model.gc_expired_links(windows, batch, dry_run=False)).deleted:
            tally.add("links", len(links.blobs))
            notify("links", tally.counts.get("links", 0))
        self._blobs(tally, notify)
        self._repositories(tally, notify)  # the ones emptied by this cycle go now
        cleaned = self.cleaner.run_once(batch)
        tally.add("uploads", cleaned.sessions)
        tally.add("upload_orphans", cleaned.orphans)
        notify("uploads", cleaned.sessions)

    def _repositories(self, tally: _Tally, notify: Progress) -> None:
        for repository_id in self.model.gc_marked_repositories(self.settings.batch):
            while True:
                step = self.model.gc_collect_repository(
                    repository_id, self.settings.batch, dry_run=False
                )
                for upload in step.uploads:
                    self.locations.driver(upload.location_name).cancel_upload(
                        upload.upload_id, upload.storage_metadata
                    )
                    self.model.delete_blob_upload(upload)
                tally.add("tags", step.tags)
                tally.add("links", step.links)
                tally.add("uploads", len(step.uploads))
                if step.removed:
                    tally.add("repositories")
                    notify("repositories", tally.counts["repositories"])
                if step.removed or not (step.tags or step.links or step.uploads):
                    break

    def _drain(
        self,
        kind: str,
        counted_as: str,
        collect: Callable[[int, GcWindows], GcFreed],
        tally: _Tally,
        notify: Progress,
    ) -> None:
        """Passes over the due candidates of ``kind`` until one deletes nothing: each
        pass takes up what the deletes of the previous one made candidates."""
        for _ in range(MAX_PASSES):
            deleted, after = 0, 0
            while ids := self.model.gc_candidates(kind, self.settings.batch, after):
                for target_id in ids:
                    freed = collect(target_id, self.settings.windows)
                    if freed.deleted:
                        deleted += 1
                        tally.add(counted_as)
                        tally.add("tags", freed.tags)
                        notify(counted_as, tally.counts[counted_as])
                after = ids[-1]
            if not deleted:
                return

    def _blobs(self, tally: _Tally, notify: Progress) -> None:
        for _ in range(MAX_PASSES):
            deleted, after = 0, 0
            while ids := self.model.gc_candidates("blob", self.settings.batch, after):
                for blob_id in ids:
                    deleted += self._blob(blob_id, tally)
                    notify("blobs", tally.counts.get("blobs", 0))
                after = ids[-1]
            if not deleted:
                return

    def _blob(self, blob_id: int, tally: _Tally) -> int:
        name = self.model.gc_blob_digest(blob_id)
        if name is None:  # gone already: the collect call drops the candidate
            self.model.gc_collect_blob(blob_id, self.settings.windows)
            return 0
        with self.model.gc_try_digest(name) as held:
            if not held:
                tally.add("busy")
                return 0
            # Under the digest: no push of it can move bytes in or commit a row until
            # both the row and the bytes are gone (or the row stays, referenced).
            objects = self.model.gc_collect_blob(blob_id, self.settings.windows)
            if objects is None:
                return 0
            tally.add("blobs")
            tally.add("bytes", objects[0].size if objects else 0)
            tally.placed(objects)
            self._delete_objects(objects, tally)
        return 1

    def _delete_objects(self, objects: list[GcObject], tally: _Tally) -> None:
        done = []
        for item in objects:
            try:
                self.locations.driver(item.location_name).delete(object_key(item))
            except Exception:
                # Left recorded: the next cycle tries again (a location briefly down).
                log.warning(
                    "could not delete a collected object",
                    exc_info=True,
                    location=item.location_name,
                    key=object_key(item),
                )
                continue
            done.append(item.id)
            tally.add("objects")
        self.model.gc_forget_objects(done)

    def _leftover_objects(self, tally: _Tally, notify: Progress) -> None:
        """Objects whose rows an interrupted cycle deleted: deleted now, unless a push
        has recorded the digest again since (then the bytes are its, and stay)."""
        after = 0
        while pending := self.model.gc_pending_objects(after, self.settings.batch):
            after = pending[-1].id
            for item in pending:
                with self.model.gc_try_digest(item.lock_name) as held:
                    if not held:
                        tally.add("busy")
                        continue
                    if (
                        item.content_addressed
                        and item.digest
                        and self.model.gc_digest_recorded(item.digest)
                    ):
                        self.model.gc_forget_objects([item.id])
                        continue
                    self._delete_objects([item], tally)
            notify("objects", tally.counts.get("objects", 0))

    # -- a dry run -------------------------------------------------------------------------

    def _dry_cycle(self, tally: _Tally, notify: Progress) -> None:
        model, windows, batch = self.model, self.settings.windows, self.settings.batch
        for item in self._all_pending():
            tally.placed([item])
            tally.add("objects")
        repositories: set[int] = set()
        manifests: deque[int] = deque()
        images: deque[int] = deque()
        blobs: deque[int] = deque()

        def take(freed: GcFreed) -> None:
            manifests.extend(freed.manifests)
            images.extend(freed.legacy_images)
            blobs.extend(freed.blobs)

        for repository_id in model.gc_marked_repositories(1_000_000):
            step = model.gc_collect_repository(repository_id, batch, dry_run=True)
            repositories.add(repository_id)
            tally.add("repositories")
            tally.add("tags", step.tags)
            tally.add("links", step.links)
            tally.add("uploads", len(step.uploads))
            take(step.candidates)
        after: tuple[int, int] | None = None
        while expired := model.gc_expired_tags(windows, after, batch):
            freed = model.gc_purge_tags([tag_id for _, tag_id in expired], windows, dry_run=True)
            tally.add("tags", freed.tags)
            take(freed)
            after = expired[-1]
        for kind, queue in (("manifest", manifests), ("legacy_image", images), ("blob", blobs)):
            queue.extend(self._all_candidates(kind))
        links = model.gc_expired_links(windows, batch, dry_run=True)
        tally.add("links", len(links.blobs))
        take(links)
        gone_manifests: set[int] = set()
        gone_images: set[int] = set()

        def gone() -> GcGone:
            return GcGone(
                frozenset(repositories), frozenset(gone_manifests), frozenset(gone_images)
            )

        # Manifests to a fixed point (a deleted index frees its children, a subject its
        # referrers), then legacy images (a child frees its parent), then blobs.
        while manifests:
            manifest_id = manifests.popleft()
            if manifest_id in gone_manifests:
                continue
            freed = model.gc_collect_manifest(manifest_id, windows, gone())
            if freed.deleted:
                gone_manifests.add(manifest_id)
                tally.add("manifests")  # (its expired tags were counted with the purge)
                take(freed)
                notify("manifests", len(gone_manifests))
        while images:
            image_id = images.popleft()
            if image_id in gone_images:
                continue
            freed = model.gc_collect_legacy_image(image_id, windows, gone())
            if freed.deleted:
                gone_images.add(image_id)
                tally.add("legacy_images")
                take(freed)
        seen: set[int] = set()
        for blob_id in blobs:
            if blob_id in seen:
                continue
            seen.add(blob_id)
            objects = model.gc_collect_blob(blob_id, windows, gone())
            if objects is not None:
                tally.add("blobs")
                tally.add("bytes", objects[0].size if objects else 0)
                tally.placed(objects)
                notify("blobs", tally.counts["blobs"])
        cutoff = datetime.now(UTC) - self.settings.upload_max_age
        tally.add("uploads", len(model.list_stale_blob_uploads(cutoff, 1_000_000)))

    def _all_candidates(self, kind: str) -> list[int]:
        found: list[int] = []
        while ids := self.model.gc_candidates(kind, self.settings.batch, found[-1] if found else 0):
            found.extend(ids)
        return found

    def _all_pending(self) -> list[GcObject]:
        found: list[GcObject] = []
        while items := self.model.gc_pending_objects(
            found[-1].id if found else 0, self.settings.batch
        ):
            found.extend(items)
        return found


def _loggable(report: GcReport) -> dict[str, object]:
    return {
        "repositories": report.repositories,
        "tags": report.tags,
        "manifests": report.manifests,
        "blobs": report.blobs,
        "bytes": report.bytes,
        "objects": report.objects,
        "uploads": report.uploads,
        "busy": report.busy,
    }
