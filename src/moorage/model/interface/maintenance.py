"""What background jobs (replication, storage verify, upload cleanup, garbage collection) need."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from moorage.domain.records import (
    Blob,
    BlobUpload,
)


class Maintenance(Protocol):
    """What background jobs read and repair: placements (replication, verify), stale
    upload sessions (cleanup), totals per location. Garbage collection adds its queries here."""

    def lookup_blob(self, digest: str) -> Blob | None:
        """The global blob recorded under ``digest`` (in any repository), placements loaded."""
        ...

    def add_blob_placement(self, blob: Blob, location_name: str) -> None:
        """Records that ``location_name`` holds the blob's bytes (idempotent)."""
        ...

    def remove_blob_placement(self, blob: Blob, location_name: str) -> bool:
        """Forget that ``location_name`` holds the blob's bytes (they were found corrupt);
        True if a placement was removed. Reads then use another location or answer 404."""
        ...

    def list_blobs_missing_placement(
        self, location_name: str, *, after_id: int = 0, limit: int = 100
    ) -> list[Blob]:
        """Complete content-addressed blobs with no placement at ``location_name``, by
        id after ``after_id``, with their placements loaded (where a copy can come from)."""
        ...

    def placed_blob_totals(
        self, location_name: str, *, after_digest: str | None = None
    ) -> tuple[int, int]:
        """``(count, bytes)`` of the blobs placed at ``location_name`` whose digest sorts
        after ``after_digest`` (every one when None)."""
        ...

    def placed_totals_by_location(self) -> dict[str, tuple[int, int]]:
        """``{location: (blobs, bytes)}`` of every blob placement, derived objects included
        (``storage usage``); a location holding nothing is absent."""
        ...

    def open_upload_totals_by_location(self) -> dict[str, tuple[int, int]]:
        """``{location: (sessions, bytes received so far)}`` of the open upload sessions."""
        ...

    def list_stale_blob_uploads(
        self, created_before: datetime, limit: int = 100
    ) -> list[BlobUpload]:
        """Upload sessions started before ``created_before``, oldest first."""
        ...

    def known_blob_upload_ids(self, upload_ids: Iterable[str]) -> set[str]:
        """Which of these session ids still have a session record."""
        ...


# -- garbage collection (issue 14; the protocol is in docs/gc.md) --------------------------


@dataclass(frozen=True, slots=True)
class GcWindows:
    """How long GC leaves things alone past the point they became unreferenced."""

    blob_grace_ms: int  # a blob younger than this, or a link expired less than this, stays
    manifest_grace_ms: int  # a manifest younger than this stays (pushed by digest, untagged)
    tag_grace_ms: int  # a hidden temp tag ended less than this ago stays


@dataclass(frozen=True, slots=True)
class GcGone:
    """What a dry run has found so far, as if deleted: references from these do not count."""

    repositories: frozenset[int] = frozenset()
    manifests: frozenset[int] = frozenset()
    legacy_images: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class GcFreed:
    """What one collection step deleted (or, in a dry run, would), and the rows it made
    candidates of (to re-check next)."""

    deleted: bool = False
    tags: int = 0
    manifests: tuple[int, ...] = ()
    legacy_images: tuple[int, ...] = ()
    blobs: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class GcObject:
    """A storage object a collected blob leaves to delete (its row is gone)."""

    id: int  # of the pending-delete record (0 in a dry run)
    location_name: str
    digest: str | None
    blob_uuid: str
    content_addressed: bool  # its key is the digest's; else the uuid's (a derived object)
    size: int

    @property
    def lock_name(self) -> str:
        """What the per-digest lock is taken on for this object."""
        return lock_name(self.digest, self.blob_uuid, self.content_addressed)


def lock_name(digest: str | None, blob_uuid: str, content_addressed: bool) -> str:
    return digest if content_addressed and digest else f"derived:{blob_uuid}"


@dataclass(frozen=True, slots=True)
class GcRepositoryStep:
    """One bounded step of collecting a repository marked for deletion."""

    tags: int
    links: int
    candidates: GcFreed
    uploads: tuple[BlobUpload, ...]  # sessions to cancel in storage, then forget
    removed: bool  # this step removed the repository row (nothing was left in it)


class BlobDigestLocks(Protocol):
    """The per-digest lock between a push and GC (docs/gc.md)."""

    def holding_blob_digest(self, digest: str) -> AbstractContextManager[None]:
        """Held (shared with other pushers of the digest) from before the bytes move to the
        digest's key until the blob row is committed: GC cannot delete them in between."""
        ...


class GarbageCollection(BlobDigestLocks, Protocol):
    """What the garbage collector reads and deletes. Every ``gc_collect_*`` re-checks the
    row's references in the transaction that deletes it; with ``gone`` (a dry run) it
    writes nothing and judges as if those rows were deleted already."""

    def gc_try_digest(self, digest: str) -> AbstractContextManager[bool]:
        """The digest held exclusively (True), or False at once if a push or another GC
        holds it."""
        ...

    def gc_expired_tags(
        self, windows: GcWindows, after: tuple[int, int] | None, limit: int
    ) -> list[tuple[int, int]]:
        """``(lifetime_end_ms, id)`` of tag versions past their time-machine window
        (hidden temp tags: past their end and the grace), in that order after ``after``."""
        ...

    def gc_purge_tags(
        self, tag_ids: Sequence[int], windows: GcWindows, *, dry_run: bool
    ) -> GcFreed:
        """Deletes those still expired; their manifests and legacy images become candidates."""
        ...

    def gc_marked_repositories(self, limit: int) -> list[int]:
        """Ids of repositories marked for deletion."""
        ...

    def gc_collect_repository(
        self, repository_id: int, limit: int, *, dry_run: bool
    ) -> GcRepositoryStep:
        """Up to ``limit`` of its tags and links deleted (all its manifests and legacy images
        made candidates), its upload sessions handed back; the row removed once empty."""
        ...

    def gc_expired_links(self, windows: GcWindows, limit: int, *, dry_run: bool) -> GcFreed:
        """Deletes up to ``limit`` upload/mount links expired past the grace; their blobs
        become candidates (a dry run lists them all)."""
        ...

    def gc_candidates(self, kind: str, limit: int, after_id: int = 0) -> list[int]:
        """Due candidates of ``kind`` (manifest, legacy_image, blob) by target id."""
        ...

    def gc_collect_manifest(
        self, manifest_id: int, windows: GcWindows, gone: GcGone | None = None
    ) -> GcFreed:
        """Deletes the manifest if nothing keeps it (no live or restorable tag, no index
        holding it, no existing subject, no temp tag, older than the grace)."""
        ...

    def gc_collect_legacy_image(
        self, image_id: int, windows: GcWindows, gone: GcGone | None = None
    ) -> GcFreed:
        """Deletes the legacy image (and its derived images) if no manifest, tag or child
        image keeps it."""
        ...

    def gc_blob_digest(self, blob_id: int) -> str | None:
        """The digest to lock for a blob candidate (None: gone already or derived)."""
        ...

    def gc_collect_blob(
        self, blob_id: int, windows: GcWindows, gone: GcGone | None = None
    ) -> list[GcObject] | None:
        """Deletes the blob row if nothing references it, recording its objects to delete
        (returned); None when it stays. Call holding its digest (``gc_try_digest``)."""
        ...

    def gc_pending_objects(self, after_id: int, limit: int) -> list[GcObject]:
        """Objects whose rows were deleted and whose bytes may still be stored."""
        ...

    def gc_digest_recorded(self, digest: str) -> bool:
        """Whether a blob row names the digest (a push re-created it: its bytes stay)."""
        ...

    def gc_forget_objects(self, object_ids: Sequence[int]) -> None:
        """The objects are deleted (or belong to a blob again): drop their records."""
        ...

    def gc_queue_sizes(self) -> dict[str, int]:
        """Candidates and pending objects waiting, by kind."""
        ...
