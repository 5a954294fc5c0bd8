"""Removing abandoned upload sessions and their partial data, in every location."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from moorage.model.interface import BlobUploads, Maintenance
from moorage.storage import StorageLocations

DEFAULT_MAX_AGE = timedelta(days=2)


class UploadCleanupStore(BlobUploads, Maintenance, Protocol):
    """Stale upload sessions and their removal."""


@dataclass(frozen=True, slots=True)
class CleanupReport:
    sessions: int  # session records (and their data) removed
    orphans: int  # storage-side session data with no record, removed


class UploadCleaner:
    def __init__(
        self,
        model: UploadCleanupStore,
        locations: StorageLocations,
        max_age: timedelta = DEFAULT_MAX_AGE,
    ) -> None:
        self.model, self.locations, self.max_age = model, locations, max_age

    def run_once(self, batch: int = 100) -> CleanupReport:
        cutoff = datetime.now(UTC) - self.max_age
        sessions = 0
        while True:
            stale = self.model.list_stale_blob_uploads(cutoff, batch)
            for upload in stale:
                self.locations.driver(upload.location_name).cancel_upload(
                    upload.upload_id, upload.storage_metadata
                )
                self.model.delete_blob_upload(upload)
                sessions += 1
            if len(stale) < batch:
                break
        return CleanupReport(sessions, self._orphans(cutoff.timestamp()))

    def _orphans(self, cutoff: float) -> int:
        """Session data a crash left behind without a record (or whose record is gone)."""
        removed = 0
        for driver in self.locations.drivers.values():
            old = {sid for sid, modified in driver.list_uploads() if modified < cutoff}
            for session_id in old - self.model.known_blob_upload_ids(old):
                driver.cancel_upload(session_id, {"size": 0})
                removed += 1
        return removed
