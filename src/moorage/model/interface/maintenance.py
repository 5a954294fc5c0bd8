"""What background jobs (replication, storage verify, upload cleanup, garbage collection) need."""

from __future__ import annotations

from collections.abc import Iterable
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

    def list_stale_blob_uploads(
        self, created_before: datetime, limit: int = 100
    ) -> list[BlobUpload]:
        """Upload sessions started before ``created_before``, oldest first."""
        ...

    def known_blob_upload_ids(self, upload_ids: Iterable[str]) -> set[str]:
        """Which of these session ids still have a session record."""
        ...
