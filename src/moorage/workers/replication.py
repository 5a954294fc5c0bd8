"""The ``worker replicate`` job: copy every blob to each configured location."""

from __future__ import annotations

from moorage.model.interface import Maintenance
from moorage.services.replication import ReplicationReport, ReplicationService
from moorage.storage import StorageLocations


class ReplicationJob:
    """Built by ``app.build``; the CLI (or a loop) only runs it."""

    name = "replicate"

    def __init__(self, model: Maintenance, locations: StorageLocations) -> None:
        self.service = ReplicationService(model, locations)

    def run_once(self) -> ReplicationReport:
        """One pass over every location (see ``ReplicationService.run_once``)."""
        return self.service.run_once()
