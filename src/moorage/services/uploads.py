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
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Final, Protocol

from moorage.domain.digest import Digest
from moorage.domain.errors import (
    DigestMismatchError,
    InvalidDigestError,
    SizeInvalidError,
    TooManyRequestsError,
    UploadBusyError,
    UploadInvalidError,
    UploadNotFoundError,
    UploadRangeError,
)
from moorage.domain.records import Blob, BlobUpload, RepositoryReference, TorrentInfo
from moorage.hashing import InvalidHashStateError, PieceHasher, ResumableHasher
from moorage.hashing.background import BackgroundFeed
from moorage.model.interface import BlobDigestLocks, BlobUploads, UploadCaps
from moorage.storage import ObjectNotFoundError, StorageDriver, StorageLocations, keys
from moorage.storage import UploadBusyError as StorageBusyError
from moorage.storage.driver import UploadDataLostError

_UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")
DEFAULT_PIECE_LENGTH = 512 * 1024


class UploadStore(BlobUploads, UploadCaps, BlobDigestLocks, Protocol):
    """Upload sessions, their caps, their commit and the digest lock GC respects."""


@dataclass(frozen=True, slots=True)
class UploadProgress:
    upload_id: str
    size: int


@dataclass(frozen=True, slots=True)
class UploadSettings:
    blob_link_expiration_s: int = 3600
    max_blob_size: int = 20 * 1024**3
    piece_length: int = DEFAULT_PIECE_LENGTH
    hash_pieces: bool = False  # SHA-1 torrent pieces while uploading (torrents.enabled)
    max_sessions_per_repository: int = 500
    max_sessions_per_client: int = 200
    limit_retry_after_s: int = 30


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
        expected: int | None = None,
    ) -> None:
        self.chunks, self.hasher, self.pieces, self.limit = chunks, hasher, pieces, limit
        # Past the announced length nothing more is written: the request already failed.
        self.expected = expected
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
                if self.expected is not None and self.count > self.expected:
                    raise SizeInvalidError(
                        f"received more than the {self.expected} bytes announced"
                    )
                if self._helper is None and self.count <= self.INLINE_HASHING:
                    self._hash(chunk)
                else:
                    if self._helper is None:
                        self._helper = BackgroundFeed(self._hash)
                    self._helper.put(chunk)
                yield chunk
            if self.expected is not None and self.count != self.expected:
                # Raised from the body itself, so storage drops what it wrote of it.
                raise SizeInvalidError(f"received {self.count} bytes, expected {self.expected}")
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
        self, model: UploadStore, locations: StorageLocations, settings: UploadSettings
    ) -> None:
        self.model, self.locations, self.settings = model, locations, settings

    def _storage(self, upload: BlobUpload) -> StorageDriver:
        """Chunks go where the session started, whichever worker receives them."""
        return self.locations.driver(upload.location_name)

    # -- sessions --------------------------------------------------------------------

    def start(self, repository: RepositoryReference, client: str | None = None) -> UploadProgress:
        upload = self._start(repository, client)
        return UploadProgress(upload.upload_id, 0)

    def _start(self, repository: RepositoryReference, client: str | None) -> BlobUpload:
        self._check_limits(repository, client)
        storage = self.locations.default_driver
        session_id, metadata = storage.initiate_upload()
        upload = self.model.create_blob_upload(
            repository, session_id, self.locations.default, metadata, client=client
        )
        if upload is None:
            storage.cancel_upload(session_id, metadata)
            raise UploadInvalidError("the repository vanished")
        return upload

    def _check_limits(self, repository: RepositoryReference, client: str | None) -> None:
        limits = self.settings
        in_repository, of_client = self.model.open_upload_counts(repository, client)
        if in_repository >= limits.max_sessions_per_repository:
            raise TooManyRequestsError(
                f"too many open uploads in this repository (limit "
                f"{limits.max_sessions_per_repository}); finish or cancel some first",
                limits.limit_retry_after_s,
            )
        if client is not None and of_client >= limits.max_sessions_per_client:
            raise TooManyRequestsError(
                f"too many open uploads from this client (limit "
                f"{limits.max_sessions_per_client}); finish or cancel some first",
                limits.limit_retry_after_s,
            )

    def _session(self, repository: RepositoryReference, upload_id: str) -> BlobUpload:
        upload = (
            self.model.lookup_blob_upload(repository, upload_id)
            if _UPLOAD_ID.match(upload_id)
            else None
        )
        if upload is None:
            raise UploadNotFoundError(f"blob upload unknown to registry: {upload_id}")
        return upload

    @contextmanager
    def _locked(self, repository: RepositoryReference, upload_id: str) -> Iterator[BlobUpload]:
        """Holds the session for one write (see docs/uploads.md): the storage lock first,
        then the state read afresh, so what the caller sees stays true until it leaves.
        Nothing waits: a session in use answers UploadBusyError (416) at once."""
        upload = self._session(repository, upload_id)
        try:
            with self._storage(upload).lock_upload(upload_id):
                yield self._session(repository, upload_id)
        except StorageBusyError:
            raise UploadBusyError(upload_id, upload.byte_count) from None
        except ObjectNotFoundError:
            raise UploadNotFoundError(f"blob upload unknown to registry: {upload_id}") from None
        except UploadDataLostError:
            # The session file lost bytes in a crash: it cannot continue; the client restarts.
            self._discard(upload)
            raise UploadNotFoundError(
                f"blob upload {upload_id} lost its data; start the upload again"
            ) from None

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
        with self._locked(repository, upload_id) as upload:
            upload = self._append(repository, upload, chunks, content_range, content_length)
        return UploadProgress(upload_id, upload.byte_count)

    def _append(
        self,
        repository: RepositoryReference,
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
        if expected is not None and expected > self.settings.max_blob_size - upload.byte_count:
            raise SizeInvalidError("the blob would exceed the maximum size")
        hasher = (
            ResumableHasher.from_state(upload.sha_state)
            if upload.sha_state is not None
            else ResumableHasher.new("sha256")
        )
        pieces = self._pieces(upload)
        limit = self.settings.max_blob_size - upload.byte_count
        reader = _Reader(chunks, hasher, pieces, limit, expected)
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
            current = self.model.lookup_blob_upload(repository, upload.upload_id)
            if current is None:
                raise UploadNotFoundError(f"blob upload was cancelled: {upload.upload_id}")
            # Another append counted first (only where storage grants the lock to all).
            raise UploadRangeError(upload.upload_id, current.byte_count)
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
        failure after the last chunk cancels the upload: nothing becomes visible. A failure
        while the last bytes arrive leaves the session as it was."""
        if not digest:
            raise InvalidDigestError("the digest parameter is required to finish an upload")
        parsed = Digest.parse(digest)
        with self._locked(repository, upload_id) as upload:
            upload = self._append(
                repository, upload, chunks, content_range, content_length, persist=False
            )
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
        client: str | None = None,
    ) -> Blob:
        """``POST ?digest=`` with the blob as the body: a session started and finished in
        one request. Its id never leaves the request, so nobody else can race it: no lock."""
        parsed = Digest.parse(digest)
        upload = self._start(repository, client)
        try:
            upload = self._append(repository, upload, chunks, None, content_length, persist=False)
            return self._commit(upload, parsed)
        except BaseException:
            self._discard(upload)
            raise

    def _commit(self, upload: BlobUpload, digest: Digest) -> Blob:
        actual = self._digest_of(upload, digest.algorithm)
        if actual != str(digest):
            raise DigestMismatchError(str(digest), actual)
        torrent = None
        pieces = self._pieces(upload) if upload.byte_count > 0 else None
        if pieces is not None:
            torrent = TorrentInfo(self.settings.piece_length, pieces.final_pieces())
        # Held from the move to the commit: GC deleting this digest's row and bytes waits,
        # or has finished before the bytes arrive (docs/gc.md).
        with self.model.holding_blob_digest(str(digest)):
            self._storage(upload).complete_upload(
                upload.upload_id, upload.storage_metadata, keys.blob_key(str(digest))
            )
            blob = self.model.commit_blob_upload(
                upload, str(digest), self.settings.blob_link_expiration_s, torrent_info=torrent
            )
        if blob is None:
            raise UploadNotFoundError(f"blob upload was cancelled: {upload.upload_id}")
        return blob

    def _pieces(self, upload: BlobUpload) -> PieceHasher | None:
        """The session's torrent piece hasher, if torrents are on and its pieces cover
        exactly the bytes so far (hashing began at byte 0 and followed every chunk; a piece
        length changed mid-upload shows as a mismatch). Else None: no piece is hashed, and
        a torrent computes them from the blob later."""
        if not self.settings.hash_pieces:
            return None
        if upload.piece_hashes is None and upload.chunk_count > 0:
            return None
        try:
            pieces = PieceHasher(
                self.settings.piece_length, upload.piece_hashes or b"", upload.piece_sha_state
            )
        except InvalidHashStateError:
            return None
        return pieces if pieces.bytes_hashed == upload.byte_count else None

    def _digest_of(self, upload: BlobUpload, algorithm: str) -> str:
        if algorithm == "sha256" and upload.sha_state is not None:
            return "sha256:" + ResumableHasher.from_state(upload.sha_state).hexdigest()
        # Another algorithm (sha512) than the running one: read the assembled bytes once.
        hasher = hashlib.new(algorithm)
        for chunk in self._storage(upload).read_upload(upload.upload_id, upload.storage_metadata):
            hasher.update(chunk)
        return f"{algorithm}:{hasher.hexdigest()}"
