"""Replication: copy every blob to each configured location and record the placement."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

from moorage.domain.records import Blob
from moorage.model.interface import Maintenance
from moorage.storage import StorageDriver, StorageLocations, keys


@dataclass(frozen=True, slots=True)
class ReplicationReport:
    copied: int
    failed: int


class CopyMismatchError(Exception):
    """The bytes read from the source do not hash to the blob's digest."""


class ReplicationService:
    def __init__(self, model: Maintenance, locations: StorageLocations) -> None:
        self.model, self.locations = model, locations

    def run_once(self, batch: int = 100) -> ReplicationReport:
        """One pass over every location; each blob missing there is copied from the first
        location (in preference order) that holds it, verified, then recorded."""
        copied = failed = 0
        for target in self.locations.names:
            after = 0
            while True:
                blobs = self.model.list_blobs_missing_placement(target, after_id=after, limit=batch)
                if not blobs:
                    break
                for blob in blobs:
                    after = blob.id
                    if self.copy(blob, target):
                        copied += 1
                    else:
                        failed += 1
        return ReplicationReport(copied, failed)

    def copy(self, blob: Blob, target: str) -> bool:
        source = self.locations.preferred(p for p in blob.placements if p != target)
        if source is None or blob.digest is None:
            return False  # no configured location holds it (yet)
        key = keys.blob_key(blob.digest)
        destination = self.locations.driver(target)
        try:
            destination.put(key, _verified(source[1], key, blob.digest))
        except CopyMismatchError:
            destination.delete(key)
            return False
        self.model.add_blob_placement(blob, target)
        return True


def _verified(source: StorageDriver, key: str, digest: str) -> Iterator[bytes]:
    algorithm, expected = digest.split(":", 1)
    hasher = hashlib.new(algorithm)
    for chunk in source.read(key):
        hasher.update(chunk)
        yield chunk
    if hasher.hexdigest() != expected:
        raise CopyMismatchError(f"{key} in the source does not hash to {digest}")
