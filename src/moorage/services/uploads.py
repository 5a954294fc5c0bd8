"""Blob uploads: sessions that stream while hashing, and commits that verify before linking.

Every chunk is written at the session's committed byte count and hashed on the way; only
when the storage write finished is the new count saved with the exported hash states, so a
failed or interrupted request changes nothing and the next chunk (or the final PUT) may land
on any worker. Completion is one sequence: verify the digest, move the bytes into their
content-addressed key, record and link the blob; any failure cancels the whole upload.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Final

from moorage.domain.digest import Digest
from moorage.domain.errors import (
    DigestMismatchError,
    InvalidDigestError,
    SizeInvalidError,
    UploadInvalidError,
    UploadNotFoundError,
    UploadRangeError,
)
from moorage.domain.records import Blob, BlobUpload, RepositoryReference, TorrentInfo
from moorage.hashing import PieceHasher, ResumableHasher
from moorage.hashing.background import BackgroundFeed
from moorage.model.interface import RegistryModel
from moorage.storage import StorageDriver, StorageLocations, keys

_UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")
DEFAULT_PIECE_LENGTH = 512 * 1024


@dataclass(frozen=True, slots=True)
class UploadProgress:
    upload_id: str
    size: int


@dataclass(frozen=True, slots=True)
class UploadSettings:
    blob_link_expiration_s: int = 3600
    max_blob_size: int = 20 * 1024**3
    piece_length: int = DEFAULT_PIECE_LENGTH


class _Reader:
    """Wraps the request body: counts, caps, and feeds the hashers as bytes go to storage.
    Past ``INLINE_HASHING`` bytes the hashers run on a helper thread (``BackgroundFeed``), in
    parallel with the storage write; small layers never start one. ``wait`` must be called
    once storage has taken every byte: the hash states are complete only then."""

    INLINE_HASHING: Final = 4 << 20

    def __init__(
        self,
        chunks: Iterable[bytes],
        hasher: ResumableHasher,
        pieces: PieceHasher | None,
        limit: int,
    ) -> None:
        self.chunks, self.hasher, self.pieces, self.limit = chunks, hasher, pieces, limit
        self.count = 0
        self._helper: BackgroundFeed | None = None

    def _hash(self, chunk: bytes) -> None:
        self.hasher.update(chunk)
        if self.pieces is not None:
            self.pieces.update(chunk)

    def __iter__(self) -> Iterator[bytes]:
        try:
            for chunk in self.chunks:
                if not chunk:
                    continue
                self.count += len(chunk)
                if self.count > self.limit:
                    raise UploadInvalidError("blob exceeds the maximum size")
                if self._helper is None and self.count <= self.INLINE_HASHING:
                    self._hash(chunk)
                else:
                    if self._helper is None:
                        self._helper = BackgroundFeed(self._hash)
                    self._helper.put(chunk)
                yield chunk
        except BaseException:
            self.abandon()
            raise

    def abandon(self) -> None:
        """Stops the helper, if any, without waiting for a result (the write failed)."""
        if self._helper is not None:
            self._helper.abandon()

    def wait(self) -> None:
        """Every byte handed out is hashed (re-raises a hashing failure)."""
        if self._helper is not None:
            self._helper.close()


class UploadService:
    def __init__(
        self, model: RegistryModel, locations: StorageLocations, settings: UploadSettings
    ) -> None:
        self.model, self.locations, self.settings = model, locations, settings

    def _storage(self, upload: BlobUpload) -> StorageDriver:
        """Chunks go where the session started, whichever worker receives them."""
        return self.locations.driver(upload.location_name)

    # -- sessions --------------------------------------------------------------------

    def start(self, repository: RepositoryReference) -> UploadProgress:
        storage = self.locations.default_driver
        session_id, metadata = storage.initiate_upload()
        upload = self.model.create_blob_upload(
            repository, session_id, self.locations.default, metadata
        )
        if upload is None:
            storage.cancel_upload(session_id, metadata)
            raise UploadInvalidError("the repository vanished")
        return UploadProgress(session_id, 0)

    def _session(self, repository: RepositoryReference, upload_id: str) -> BlobUpload:
        upload = (
            self.model.lookup_blob_upload(repository, upload_id)
            if _UPLOAD_ID.match(upload_id)
            else None
        )
        if upload is None:
            raise UploadNotFoundError(f"blob upload unknown to registry: {upload_id}")
        return upload

    def status(self, repository: RepositoryReference, upload_id: str) -> UploadProgress:
        return UploadProgress(upload_id, self._session(repository, upload_id).byte_count)

    def cancel(self, repository: RepositoryReference, upload_id: str) -> None:
        self._discard(self._session(repository, upload_id))

    def _discard(self, upload: BlobUpload) -> None:
        self._storage(upload).cancel_upload(upload.upload_id, upload.storage_metadata)
        self.model.delete_blob_upload(upload)

    # -- data --------------------------------------------------------------------------

    def append(
        self,
        repository: RepositoryReference,
        upload_id: str,
        chunks: Iterable[bytes],
        *,
        content_range: tuple[int, int] | None = None,
        content_length: int | None = None,
    ) -> UploadProgress:
        """Appends a PATCH body. With ``Content-Range`` the chunk must start where the
        session ends (else UploadRangeError → 416) and be exactly as long as its range."""
        upload = self._append(
            self._session(repository, upload_id), chunks, content_range, content_length
        )
        return UploadProgress(upload_id, upload.byte_count)

    def _append(
        self,
        upload: BlobUpload,
        chunks: Iterable[bytes],
        content_range: tuple[int, int] | None,
        content_length: int | None,
        *,
        persist: bool = True,
    ) -> BlobUpload:
        """Writes a chunk and saves the new progress; with ``persist`` false (the last bytes
        of a finishing upload, committed or discarded right after) only returns it."""
        expected = content_length
        if content_range is not None:
            start, end = content_range
            if start != upload.byte_count:
                raise UploadRangeError(upload.upload_id, upload.byte_count)
            span = end - start + 1
            if content_length is not None and content_length != span:
                raise SizeInvalidError("Content-Length does not match Content-Range")
            expected = span
        hasher = (
            ResumableHasher.from_state(upload.sha_state)
            if upload.sha_state is not None
            else ResumableHasher.new("sha256")
        )
        pieces = None
        if upload.piece_hashes is not None or upload.chunk_count == 0:
            pieces = PieceHasher(
                self.settings.piece_length, upload.piece_hashes or b"", upload.piece_sha_state
            )
        reader = _Reader(chunks, hasher, pieces, self.settings.max_blob_size - upload.byte_count)
        try:
            written, metadata = self._storage(upload).append_upload(
                upload.upload_id, upload.storage_metadata, upload.byte_count, reader
            )
        except BaseException:
            reader.abandon()
            raise
        reader.wait()
        if expected is not None and written != expected:
            # Not saved: the next append at the committed offset truncates these bytes.
            raise SizeInvalidError(f"received {written} bytes, expected {expected}")
        if written == 0 and upload.sha_state is not None:
            return upload  # an empty body (a final PUT without data) changes nothing
        piece_hashes = None if pieces is None else pieces.piece_hashes
        piece_state = None if pieces is None else pieces.partial_state
        size, count, state = (
            upload.byte_count + written,
            upload.chunk_count + 1,
            hasher.export_state(),
        )
        if not persist:
            return replace(
                upload,
                uncompressed_byte_count=None,
                piece_hashes=piece_hashes,
                piece_sha_state=piece_state,
                storage_metadata=metadata,
                byte_count=size,
                chunk_count=count,
                sha_state=state,
            )
        updated = self.model.update_blob_upload(
            upload, None, piece_hashes, piece_state, metadata, size, count, state
        )
        if updated is None:
            raise UploadNotFoundError(f"blob upload was cancelled: {upload.upload_id}")
        return updated

    def finish(
        self,
        repository: RepositoryReference,
        upload_id: str,
        digest: str | None,
        chunks: Iterable[bytes] = (),
        *,
        content_range: tuple[int, int] | None = None,
        content_length: int | None = None,
    ) -> Blob:
        """The final PUT: last bytes (if any), then verify and commit. A bad digest or any
        failure after the last chunk cancels the upload: nothing becomes visible."""
        if not digest:
            raise InvalidDigestError("the digest parameter is required to finish an upload")
        parsed = Digest.parse(digest)
        upload = self._session(repository, upload_id)
        upload = self._append(upload, chunks, content_range, content_length, persist=False)
        try:
            return self._commit(upload, parsed)
        except BaseException:
            self._discard(upload)
            raise

    def upload_whole(
        self,
        repository: RepositoryReference,
        digest: str,
        chunks: Iterable[bytes],
        content_length: int | None,
    ) -> Blob:
        """``POST ?digest=`` with the blob as the body: a session started and finished in
        one request."""
        parsed = Digest.parse(digest)
        progress = self.start(repository)
        upload = self._session(repository, progress.upload_id)
        try:
            upload = self._append(upload, chunks, None, content_length, persist=False)
            return self._commit(upload, parsed)
        except BaseException:
            self._discard(upload)
            raise

    def _commit(self, upload: BlobUpload, digest: Digest) -> Blob:
        actual = self._digest_of(upload, digest.algorithm)
        if actual != str(digest):
            raise DigestMismatchError(f"content digest {actual} does not match {digest}")
        self._storage(upload).complete_upload(
            upload.upload_id, upload.storage_metadata, keys.blob_key(str(digest))
        )
        torrent = None
        if upload.piece_hashes is not None and upload.byte_count > 0:
            pieces = PieceHasher(
                self.settings.piece_length, upload.piece_hashes, upload.piece_sha_state
            )
            torrent = TorrentInfo(self.settings.piece_length, pieces.final_pieces())
        blob = self.model.commit_blob_upload(
            upload, str(digest), self.settings.blob_link_expiration_s, torrent_info=torrent
        )
        if blob is None:
            raise UploadNotFoundError(f"blob upload was cancelled: {upload.upload_id}")
        return blob

    def _digest_of(self, upload: BlobUpload, algorithm: str) -> str:
        if algorithm == "sha256" and upload.sha_state is not None:
            return "sha256:" + ResumableHasher.from_state(upload.sha_state).hexdigest()
        # Another algorithm (sha512) than the running one: read the assembled bytes once.
        hasher = hashlib.new(algorithm)
        for chunk in self._storage(upload).read_upload(upload.upload_id, upload.storage_metadata):
            hasher.update(chunk)
        return f"{algorithm}:{hasher.hexdigest()}"
