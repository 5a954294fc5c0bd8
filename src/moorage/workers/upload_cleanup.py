"""The ``worker clean-uploads`` job: abandoned upload sessions and their partial data."""

from __future__ import annotations

from datetime import timedelta

from moorage.services.cleanup import (
    DEFAULT_MAX_AGE,
    CleanupReport,
    UploadCleaner,
    UploadCleanupStore,
)
from moorage.storage import StorageLocations


class UploadCleanupJob:
    """Built by ``app.build``; the CLI (or a loop) only runs it, choosing the age."""

    name = "clean-uploads"

    def __init__(
        self,
        model: UploadCleanupStore,
        locations: StorageLocations,
        max_age: timedelta = DEFAULT_MAX_AGE,
    ) -> None:
        self.model, self.locations, self.max_age = model, locations, max_age

    def run_once(self, max_age: timedelta | None = None) -> CleanupReport:
        """One pass removing sessions older than ``max_age`` (the job's own by default)."""
        age = self.max_age if max_age is None else max_age
        return UploadCleaner(self.model, self.locations, age).run_once()
