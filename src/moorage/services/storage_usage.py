"""Storage accounting (issue 14): per location, the blobs recorded there and their bytes,
the upload sessions open there and what they received, and what the next garbage
collection would free (a dry run of it)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from moorage.model.interface import Maintenance
from moorage.storage import StorageLocations


class GcPreviewReport(Protocol):
    """What a GC dry run reports that accounting shows (the collector's ``GcReport``)."""

    @property
    def tags(self) -> int: ...
    @property
    def manifests(self) -> int: ...
    @property
    def blobs(self) -> int: ...
    @property
    def bytes(self) -> int: ...
    @property
    def uploads(self) -> int: ...
    @property
    def blobs_by_location(self) -> Mapping[str, int]: ...
    @property
    def bytes_by_location(self) -> Mapping[str, int]: ...


class GcPreview(Protocol):
    """The hook for "what the next GC would free": the GC job's ``preview``, a dry run that
    deletes nothing."""

    def preview(self) -> GcPreviewReport: ...


@dataclass(frozen=True, slots=True)
class LocationUsage:
    location: str
    blobs: int  # blob placements recorded here (derived objects included)
    bytes: int  # their sizes
    uploads: int  # upload sessions open here
    upload_bytes: int  # what they have received so far
    gc_blobs: int | None = None  # blobs the next GC would delete here (None: not asked)
    gc_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class NextGc:
    """What the next GC cycle would delete, registry-wide."""

    tags: int
    manifests: int
    blobs: int
    bytes: int  # the blobs' sizes, each once (a location's gc_bytes: what it frees there)
    uploads: int  # expired upload sessions


@dataclass(frozen=True, slots=True)
class StorageUsageReport:
    locations: tuple[LocationUsage, ...]  # in the configured preference order
    next_gc: NextGc | None  # None: not asked

    @property
    def blobs(self) -> int:
        return sum(location.blobs for location in self.locations)

    @property
    def bytes(self) -> int:
        return sum(location.bytes for location in self.locations)

    def as_document(self) -> dict[str, Any]:
        """The JSON document of ``storage usage -o json`` and ``GET /healthz/storage``."""
        return {
            "blobs": self.blobs,
            "bytes": self.bytes,
            "locations": [asdict(row) for row in self.locations],
            "next_gc": None if self.next_gc is None else asdict(self.next_gc),
        }


class StorageUsage:
    """Built by ``app.build``; ``moorage storage usage`` and ``GET /healthz/storage`` read it."""

    def __init__(self, model: Maintenance, locations: StorageLocations, gc: GcPreview) -> None:
        self.model, self.locations, self.gc = model, locations, gc

    def report(self, *, include_gc: bool = True) -> StorageUsageReport:
        """Totals from two grouped queries (placements, open sessions); with ``include_gc``
        its dry run too (which reads every candidate: not for probes).
        Locations recorded in the database but no longer configured are listed after the
        configured ones, so that nothing stored goes unreported."""
        placed = self.model.placed_totals_by_location()
        uploads = self.model.open_upload_totals_by_location()
        preview = self.gc.preview() if include_gc else None
        names = list(self.locations.names)
        names += sorted((set(placed) | set(uploads)) - set(names))
        rows = []
        for name in names:
            blobs, size = placed.get(name, (0, 0))
            sessions, received = uploads.get(name, (0, 0))
            rows.append(
                LocationUsage(
                    name,
                    blobs,
                    size,
                    sessions,
                    received,
                    None if preview is None else preview.blobs_by_location.get(name, 0),
                    None if preview is None else preview.bytes_by_location.get(name, 0),
                )
            )
        next_gc = (
            None
            if preview is None
            else NextGc(
                preview.tags, preview.manifests, preview.blobs, preview.bytes, preview.uploads
            )
        )
        return StorageUsageReport(tuple(rows), next_gc)
