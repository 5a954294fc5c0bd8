"""Scrub and repair: re-hash every stored blob of a location and quarantine bad copies.

Blobs are visited in digest order (algorithm, then hex), one fan-out prefix at a time, so a
pass can stop anywhere and resume after the last digest it finished. The storage is the
truth of what is stored: an object under ``blobs/`` that the database does not record is
verified too, since the next upload of its digest would otherwise be deduplicated onto it.

Quarantine, in an order that never serves bad bytes:

1. ``move`` the object from its content-addressed key to a ``_quarantine/`` key. From then on
   a read there finds nothing (and falls back to another location, or 404), and an upload of
   the digest no longer dedupes onto the bad copy: it stores its own, genuine bytes.
2. Remove the blob's placement at the location, so reads stop looking there at all.
3. An upload that completed between 1 and 2 put genuine bytes under the key, and its placement
   may be the one just removed: if the key holds bytes again and they hash right, the
   placement is put back.

Removing the placement first would be worse: an upload completing in between would be
deduplicated onto the bad bytes and record them again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from moorage.model.interface import Maintenance
from moorage.observability import get_logger
from moorage.storage import ObjectNotFoundError, StorageDriver, StorageError, StorageLocations, keys

log = get_logger(__name__)

# The algorithms blobs are stored under (those Digest.parse accepts), in digest order.
ALGORITHMS = ("sha256", "sha512")
READ_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class CorruptBlob:
    """A stored copy whose bytes do not hash to its digest."""

    digest: str
    found_digest: str  # what the stored bytes hash to
    found_size: int
    recorded_size: int | None  # the database's size, None when it has no row
    quarantine_key: str | None  # None in a dry run, or when the move failed
    placement_removed: bool
    error: str | None = None  # why quarantine failed, if it did


@dataclass(frozen=True, slots=True)
class UnreadableBlob:
    """A stored copy the storage failed to read: reported, left in place (the failure may be
    passing, e.g. a network error), and read again by the next pass."""

    digest: str
    error: str


@dataclass(frozen=True, slots=True)
class LocationReport:
    location: str
    checked: int  # blobs re-hashed
    bytes: int  # bytes read
    corrupt: tuple[CorruptBlob, ...]
    complete: bool  # False when the pass stopped before the last blob
    resumed_after: str | None = None  # the digest this pass started after
    unreadable: tuple[UnreadableBlob, ...] = ()


class VerifyObserver(Protocol):
    """Told what a pass does: for progress bars and checkpoints."""

    def location_started(self, location: str, blobs: int, size: int) -> None:
        """A location's pass begins; ``blobs``/``size`` are the database's estimate."""

    def advanced(self, location: str, size: int) -> None:
        """``size`` more bytes were read and hashed."""

    def blob_verified(self, location: str, digest: str, corrupt: CorruptBlob | None) -> None:
        """One blob is done (and quarantined, if corrupt)."""


class _Quiet:
    def location_started(self, location: str, blobs: int, size: int) -> None:
        return None

    def advanced(self, location: str, size: int) -> None:
        return None

    def blob_verified(self, location: str, digest: str, corrupt: CorruptBlob | None) -> None:
        return None


@dataclass(slots=True)
class VerifyPass:
    """How one location is walked: after which digest, and with which hooks."""

    after: str | None = None
    dry_run: bool = False
    pace: Callable[[int], None] | None = None  # told each chunk's size (a rate limit)
    observer: VerifyObserver = field(default_factory=_Quiet)
    should_stop: Callable[[], bool] = lambda: False


class _StoppedError(Exception):
    """The pass was asked to stop in the middle of a blob."""


class StorageVerifier:
    def __init__(
        self,
        model: Maintenance,
        locations: StorageLocations,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.model, self.locations, self.now = model, locations, now

    def verify_location(self, location: str, options: VerifyPass) -> LocationReport:
        driver = self.locations.driver(location)
        blobs, size = self.model.placed_blob_totals(location, after_digest=options.after)
        options.observer.location_started(location, blobs, size)
        checked = read = 0
        corrupt: list[CorruptBlob] = []
        unreadable: list[UnreadableBlob] = []
        complete = True
        for digest, key in blob_keys(driver, options.after):
            if options.should_stop():
                complete = False
                break
            try:
                found, found_size = self._hash(driver, location, key, digest, options)
            except ObjectNotFoundError:
                continue  # deleted (or quarantined by another pass) since it was listed
            except StorageError as exc:
                log.warning("stored blob unreadable", location=location, digest=digest)
                unreadable.append(UnreadableBlob(digest, str(exc)))
                options.observer.blob_verified(location, digest, None)
                continue
            except _StoppedError:
                complete = False
                break
            checked, read = checked + 1, read + found_size
            problem = None
            if found != digest:
                problem = self._handle(driver, location, key, digest, found, found_size, options)
                corrupt.append(problem)
            options.observer.blob_verified(location, digest, problem)
        return LocationReport(
            location,
            checked,
            read,
            tuple(corrupt),
            complete,
            options.after,
            tuple(unreadable),
        )

    def _hash(
        self, driver: StorageDriver, location: str, key: str, digest: str, options: VerifyPass
    ) -> tuple[str, int]:
        """What the bytes under ``key`` hash to, and how many there are."""
        algorithm = digest.split(":", 1)[0]
        hasher = hashlib.new(algorithm)
        size = 0
        for chunk in driver.read(key, chunk_size=READ_CHUNK):
            if options.should_stop():
                raise _StoppedError
            if options.pace is not None:
                options.pace(len(chunk))
            hasher.update(chunk)
            size += len(chunk)
            options.observer.advanced(location, len(chunk))
        return f"{algorithm}:{hasher.hexdigest()}", size

    def _handle(
        self,
        driver: StorageDriver,
        location: str,
        key: str,
        digest: str,
        found: str,
        found_size: int,
        options: VerifyPass,
    ) -> CorruptBlob:
        blob = self.model.lookup_blob(digest)
        recorded = None if blob is None else blob.compressed_size
        log.warning(
            "stored blob does not match its digest",
            location=location,
            digest=digest,
            found=found,
            size=found_size,
            dry_run=options.dry_run,
        )
        if options.dry_run:
            return CorruptBlob(digest, found, found_size, recorded, None, False)
        destination = keys.quarantine_key(digest, self.now())
        target: str | None = destination
        error = None
        try:
            driver.move(key, destination)
        except ObjectNotFoundError:
            target = None  # another pass moved it first
        except StorageError as exc:
            # The placement still goes below: reads stop using this copy even if it stays.
            target, error = None, f"quarantine failed: {exc}"
        removed = blob is not None and self.model.remove_blob_placement(blob, location)
        if blob is not None and removed and error is None:
            self._keep_a_repair(driver, location, key, digest, blob.id)
        return CorruptBlob(digest, found, found_size, recorded, target, removed, error)

    def _keep_a_repair(
        self, driver: StorageDriver, location: str, key: str, digest: str, blob_id: int
    ) -> None:
        """Step 3 of the quarantine (module docstring): genuine bytes an upload stored under
        the key meanwhile keep their placement."""
        try:
            found, _ = self._hash(driver, location, key, digest, VerifyPass())
        except ObjectNotFoundError:
            return
        blob = self.model.lookup_blob(digest)
        if found == digest and blob is not None and blob.id == blob_id:
            self.model.add_blob_placement(blob, location)


def blob_keys(driver: StorageDriver, after: str | None = None) -> Iterator[tuple[str, str]]:
    """``(digest, key)`` of every blob stored by ``driver`` whose digest sorts after
    ``after``, in digest order; one fan-out prefix listed (and sorted) at a time."""
    for algorithm in ALGORITHMS:
        for prefix in keys.blob_fanout_prefixes(algorithm):
            covered = f"{algorithm}:{prefix[-2:]}"  # every digest under this prefix starts so
            if after is not None and covered < after[: len(covered)]:
                continue
            found = []
            for key in driver.list(prefix):
                digest = keys.digest_of_blob_key(key)
                if digest is not None and (after is None or digest > after):
                    found.append((digest, key))
            yield from sorted(found)
