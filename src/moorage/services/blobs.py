"""Blobs as a repository serves them: lookups, ranged reads, mounts, unlinking."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from moorage.domain.access import Principal
from moorage.domain.digest import Digest
from moorage.domain.errors import BlobNotFoundError, ManifestError, OperationUnsupportedError
from moorage.domain.records import Blob, RepositoryReference
from moorage.model.interface import BlobLinks, RepositoryBlobs
from moorage.observability import get_logger
from moorage.services.reads import pure_read
from moorage.storage import ObjectNotFoundError, StorageDriver, StorageLocations, keys

log = get_logger(__name__)


class BlobStore(BlobLinks, RepositoryBlobs, Protocol):
    """Blobs as a repository sees them, mounts and blob deletes."""


@dataclass(frozen=True, slots=True)
class BlobContent:
    """Where a blob's bytes are: a redirect to offer, or chunks to stream."""

    digest: str
    size: int
    redirect_url: str | None
    storage: StorageDriver
    key: str
    local_file: Path | None = None  # the file holding the bytes, when on local disk

    def chunks(self, start: int = 0, length: int | None = None) -> Iterator[bytes]:
        return self.storage.read(self.key, start, length)


class BlobService:
    def __init__(
        self,
        model: BlobStore,
        locations: StorageLocations,
        *,
        link_expiration_s: int = 3600,
        redirect_expiration_s: int | None = 600,
    ) -> None:
        self.model, self.locations = model, locations
        self.link_expiration_s = link_expiration_s
        self.redirect_expiration_s = redirect_expiration_s

    @pure_read
    def stat(self, repository: RepositoryReference, digest: str) -> Blob:
        """The blob, if some configured location holds it: a blob whose copies were all
        quarantined (``storage verify``) answers 404, so clients upload it again."""
        Digest.parse(digest)
        blob = self.model.get_repo_blob_by_digest(repository, digest, include_placements=True)
        if blob is None or blob.digest is None or not self.locations.holding(blob.placements):
            raise BlobNotFoundError(digest)
        return blob

    def content(self, repository: RepositoryReference, digest: str) -> BlobContent:
        """The blob's bytes from the first location, in preference order, that holds them."""
        Digest.parse(digest)
        blob = self.model.get_repo_blob_by_digest(repository, digest, include_placements=True)
        if blob is None or blob.digest is None:
            raise BlobNotFoundError(digest)
        key = keys.blob_key(digest)
        held = self._holder(blob.placements, key)
        if held is None:
            raise BlobNotFoundError(digest)  # recorded, but in no reachable location
        storage, local_file = held
        redirect = None
        if self.redirect_expiration_s is not None:
            redirect = storage.redirect_url(key, self.redirect_expiration_s)
        return BlobContent(
            digest=digest,
            size=blob.compressed_size or 0,
            redirect_url=redirect,
            storage=storage,
            key=key,
            local_file=local_file,
        )

    def _holder(
        self, placements: tuple[str, ...], key: str
    ) -> tuple[StorageDriver, Path | None] | None:
        """The first location, in preference order, that really has the bytes (a copy lost
        in one location is served from the next), with the local file holding them if any."""
        for name, storage in self.locations.holding(placements):
            try:
                local_file = storage.local_path(key)  # checks the object is there, like stat
            except ObjectNotFoundError:
                log.warning("blob missing from its recorded location", key=key, location=name)
                continue
            return storage, local_file
        return None

    def read_small(self, repository: RepositoryReference, digest: str, limit: int) -> bytes:
        """A small blob (an image config) whole; refuses anything over ``limit`` bytes."""
        content = self.content(repository, digest)
        if content.size > limit:
            raise ManifestError(f"blob {digest} is larger than {limit} bytes")
        return b"".join(content.chunks())

    def mount(
        self, target: RepositoryReference, digest: str, source: RepositoryReference
    ) -> Blob | None:
        """Links the blob from ``source`` into ``target`` (no bytes copied); None when the
        source does not have it, so the caller falls back to a normal upload."""
        Digest.parse(digest)
        blob = self.model.get_repo_blob_by_digest(source, digest, include_placements=True)
        if blob is None or not self.locations.holding(blob.placements):
            return None  # stored nowhere (quarantined, say): a mount must not stand for bytes
        if not self.model.mount_blob_into_repository(blob, target, self.link_expiration_s):
            return None
        return blob

    def mount_readable(
        self, target: RepositoryReference, digest: str, reader: Principal | None
    ) -> Blob | None:
        """A mount without ``from`` (OCI 1.1's automatic content discovery): from some
        repository ``reader`` may pull that holds the blob (any, for None: auth is off);
        None when there is none, so the caller falls back to an upload revealing nothing."""
        Digest.parse(digest)
        source = self.model.find_readable_repository_with_blob(reader, digest)
        return None if source is None else self.mount(target, digest, source)

    def unlink(self, repository: RepositoryReference, digest: str) -> None:
        """A blob DELETE: drops the repository's upload and mount links. A blob that a
        manifest still references stays; the manifest must go first."""
        blob = self.stat(repository, digest)
        if not self.model.remove_blob_links(repository, blob):
            raise OperationUnsupportedError(
                f"blob {digest} is referenced by a manifest of the repository; delete that first"
            )
