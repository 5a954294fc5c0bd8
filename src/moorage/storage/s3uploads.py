"""Chunked upload sessions of the S3 driver: readable segment objects, joined at completion.

S3 cannot read back, truncate or reorder the parts of an unfinished multipart upload, and wants
every part but the last to be >= 5 MiB, while clients send chunks of any size (often tiny
PATCHes) and the contract needs ``read_upload`` and truncation to any committed offset. So a
session's bytes are kept as ordinary, immutable *segment* objects, each written once under a
fresh name, and the multipart upload exists only inside ``complete_upload``:

* ``_uploads/<sid>/session``: an empty marker object; its presence is the session's existence.
  ``cancel`` and ``complete`` delete it last, so a half-deleted session is still listed (and
  cleaned by the stale-upload cleaner).
* ``_uploads/<sid>/s-<uuid>``: the segments, listed in order in the caller-persisted metadata
  ``{"size": N, "segments": [{"key": ..., "size": n}, ...]}``. A *sealed* segment holds 5 MiB to
  ``part_size`` bytes; the *loose* segments after the last sealed one hold < 5 MiB in all.

``append`` cuts the metadata's segment list at ``offset`` (bytes past it, from a request whose
commit was lost, are simply no longer referenced; a segment cut in the middle has its prefix,
< ``part_size``, re-read), then buffers the incoming bytes and writes a sealed segment of
``part_size`` whenever the loose bytes plus the buffer reach it (downloading the < 5 MiB of
loose segments once to merge them); the remaining tail becomes one more loose segment (sealed if
it reaches 5 MiB). Memory stays within about two parts whatever the chunk sizes, each byte is
merged at most once, and nothing lives in process memory or on local disk between requests.
Segments are never overwritten, so the metadata of any earlier request stays valid; orphans of
failed or superseded appends are removed with the session.

``complete`` joins the segments server-side: a single segment is copied (``CopyObject``), several
become a multipart upload of ``UploadPartCopy`` parts (sealed segments) plus a last part made of
the loose bytes, so objects over 5 GiB work. If the final key already exists the data is dropped.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from moorage.storage.driver import StorageError, UploadMetadata
from moorage.storage.keys import UPLOADS_DIR, new_session_id, upload_prefix, validate_session_id
from moorage.storage.s3common import MIN_PART, Bucket, Multipart, rechunk, take
from moorage.storage.sessions import byte_chunks, check_offset, committed_size

MARKER = "session"
_SEGMENT = re.compile(r"s-[0-9a-f]{32}")


@dataclass(frozen=True, slots=True)
class Segment:
    key: str
    size: int

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "size": self.size}


def _metadata(segments: list[Segment]) -> UploadMetadata:
    return {"size": sum(s.size for s in segments), "segments": [s.to_json() for s in segments]}


def parse(session_id: str, metadata: UploadMetadata) -> list[Segment]:
    """The segments recorded in ``metadata``; StorageError unless they are this session's and
    add up to its committed size. ``{"size": 0}`` alone is an empty session."""
    size = committed_size(metadata)
    raw = metadata.get("segments", [])
    below = f"{upload_prefix(session_id)}/"
    segments: list[Segment] = []
    if not isinstance(raw, list):
        raise StorageError(f"malformed upload metadata: {metadata!r}")
    for item in raw:
        key = item.get("key") if isinstance(item, dict) else None
        length = item.get("size") if isinstance(item, dict) else None
        if (
            not isinstance(key, str)
            or not key.startswith(below)
            or not _SEGMENT.fullmatch(key[len(below) :])
            or not isinstance(length, int)
            or isinstance(length, bool)
            or length <= 0
        ):
            raise StorageError(f"malformed upload segment {item!r} of session {session_id}")
        segments.append(Segment(key, length))
    if sum(s.size for s in segments) != size:
        raise StorageError(f"upload {session_id}: segments do not add up to {size} bytes")
    return segments


def split_loose(segments: list[Segment]) -> tuple[list[Segment], list[Segment]]:
    """``(sealed, loose)``: loose is the trailing run of segments under 5 MiB."""
    cut = len(segments)
    while cut > 0 and segments[cut - 1].size < MIN_PART:
        cut -= 1
    return segments[:cut], segments[cut:]


class S3Uploads:
    def __init__(self, bucket: Bucket, part_size: int) -> None:
        self.bucket = bucket
        self.part_size = part_size

    def initiate(self) -> tuple[str, UploadMetadata]:
        session_id = new_session_id()
        self.bucket.put_bytes(self._marker(session_id), b"")
        return session_id, _metadata([])

    def append(
        self, session_id: str, metadata: UploadMetadata, offset: int, chunks: Iterable[bytes]
    ) -> tuple[int, UploadMetadata]:
        segments = parse(validate_session_id(session_id), metadata)
        check_offset(offset, committed_size(metadata))
        self._require(session_id)  # fail before consuming the caller's stream
        writer = _Writer(self, session_id)
        writer.start(segments, offset)
        written = 0
        for chunk in byte_chunks(chunks):
            written += len(chunk)
            writer.add(chunk)
        return written, _metadata(writer.finish())

    def size(self, session_id: str, metadata: UploadMetadata) -> int:
        parse(validate_session_id(session_id), metadata)
        self._require(session_id)
        return committed_size(metadata)

    def read(self, session_id: str, metadata: UploadMetadata, chunk_size: int) -> Iterator[bytes]:
        segments = parse(validate_session_id(session_id), metadata)
        self._require(session_id)
        pieces = (
            piece
            for segment in segments
            for piece in self.bucket.stream(segment.key, 0, segment.size, chunk_size)
        )
        return rechunk(pieces, chunk_size)

    def complete(
        self,
        session_id: str,
        metadata: UploadMetadata,
        final_key: str,
        exists: Callable[[str], bool],
    ) -> None:
        segments = parse(validate_session_id(session_id), metadata)
        self._require(session_id)
        if not exists(final_key):
            self._assemble(segments, final_key)
        self.cancel(session_id)

    def cancel(self, session_id: str) -> None:
        marker = self._marker(session_id)
        keys = [item.key for item in self.bucket.listing(f"{upload_prefix(session_id)}/")]
        self.bucket.delete_many([key for key in keys if key != marker])
        self.bucket.delete_many([marker])

    def sessions(self) -> Iterator[tuple[str, float]]:
        latest: dict[str, float] = {}
        for item in self.bucket.listing(f"{UPLOADS_DIR}/"):
            parts = item.key.split("/")
            if len(parts) == 3:
                modified = item.modified.timestamp()
                latest[parts[1]] = max(modified, latest.get(parts[1], modified))
        return iter(sorted(latest.items()))

    # Helpers ----------------------------------------------------------------------------------

    def _marker(self, session_id: str) -> str:
        return f"{upload_prefix(session_id)}/{MARKER}"

    def _require(self, session_id: str) -> None:
        self.bucket.head(self._marker(session_id), missing=upload_prefix(session_id))

    def write_segment(self, session_id: str, data: bytes) -> Segment:
        key = f"{upload_prefix(session_id)}/s-{new_session_id()}"
        self.bucket.put_bytes(key, data)
        return Segment(key, len(data))

    def join(self, segments: list[Segment]) -> bytes:
        """The bytes of small segments (the loose ones: < 5 MiB in all)."""
        return b"".join(self.bucket.get_bytes(s.key, s.size) for s in segments)

    def _assemble(self, segments: list[Segment], final_key: str) -> None:
        sealed, loose = split_loose(segments)
        if len(segments) == 1:
            self.bucket.copy(segments[0].key, final_key)
        elif not sealed:
            self.bucket.put_bytes(final_key, self.join(loose))
        else:
            with Multipart(self.bucket, final_key) as upload:
                for number, segment in enumerate(sealed, 1):
                    upload.copy(number, segment.key)
                if loose:
                    upload.upload(len(sealed) + 1, self.join(loose))


class _Writer:
    """The segment list of one append: sealed segments, loose ones and the unwritten buffer."""

    def __init__(self, uploads: S3Uploads, session_id: str) -> None:
        self.uploads = uploads
        self.session_id = session_id
        self.sealed: list[Segment] = []
        self.loose: list[Segment] = []
        self.buffer = bytearray()

    @property
    def loose_size(self) -> int:
        return sum(s.size for s in self.loose)

    def start(self, segments: list[Segment], offset: int) -> None:
        """Keep the first ``offset`` bytes of ``segments``; a cut segment's prefix is buffered."""
        kept: list[Segment] = []
        position = 0
        for segment in segments:
            if position + segment.size <= offset:
                kept.append(segment)
            elif position < offset:
                self.buffer += self.uploads.bucket.get_bytes(segment.key, offset - position)
            position += segment.size
        self.sealed, self.loose = split_loose(kept)
        self._seal_full_parts()

    def add(self, chunk: bytes) -> None:
        self.buffer += chunk
        self._seal_full_parts()

    def finish(self) -> list[Segment]:
        if self.buffer:
            if self.loose and self.loose_size + len(self.buffer) >= MIN_PART:
                self._merge_loose()
            segment = self.uploads.write_segment(
                self.session_id, take(self.buffer, len(self.buffer))
            )
            (self.sealed if segment.size >= MIN_PART else self.loose).append(segment)
        return self.sealed + self.loose

    def _seal_full_parts(self) -> None:
        part = self.uploads.part_size
        while self.loose_size + len(self.buffer) >= part:
            if self.loose:
                self._merge_loose()
            self.sealed.append(self.uploads.write_segment(self.session_id, take(self.buffer, part)))

    def _merge_loose(self) -> None:
        self.buffer[0:0] = self.uploads.join(self.loose)
        self.loose = []
