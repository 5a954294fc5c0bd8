"""Amazon S3 (and S3-compatible servers: SeaweedFS, MinIO, Ceph RGW...) driver, with boto3.

Objects live under ``<bucket>/<prefix>/<key>``. Reads are ranged GETs streamed from the response
body one chunk at a time. ``put`` is atomic by nature in S3 (an object appears whole when its
``PutObject`` or ``CompleteMultipartUpload`` returns): small inputs go in one ``PutObject``,
larger ones are streamed as a multipart upload, holding at most one part (plus one incoming
chunk) in memory and aborting the upload if the caller's iterator fails. ``move`` is a
server-side copy (``CopyObject``, or ranged ``UploadPartCopy`` parts beyond ``copy_threshold``,
as CopyObject stops at 5 GiB) followed by a delete: not atomic, but the destination only ever
holds a whole object.

Chunked upload sessions are described in :mod:`moorage.storage.s3uploads`. Nothing here keeps
state between calls beyond the boto3 client (thread-safe; one per driver).

Operators should give the bucket a lifecycle rule aborting incomplete multipart uploads after a
day: a process killed in the middle of a large ``put`` or ``complete_upload`` leaves one behind.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Literal, cast

import boto3
from botocore.config import Config

from moorage.storage.driver import ObjectInfo, ObjectNotFoundError, UploadMetadata
from moorage.storage.keys import UPLOADS_DIR, validate_key, validate_prefix, validate_session_id
from moorage.storage.ranges import check_read_args
from moorage.storage.s3common import (
    MAX_PART,
    MIN_PART,
    Bucket,
    MiB,
    Multipart,
    drain,
    rechunk,
    take,
    translated,
)
from moorage.storage.s3uploads import S3Uploads
from moorage.storage.sessions import byte_chunks

AddressingStyle = Literal["auto", "virtual", "path"]
_ADDRESSING_STYLES = ("auto", "virtual", "path")
_SESSION = boto3.session.Session()
_SESSION_LOCK = threading.Lock()  # creating clients from one session is not thread-safe


class S3Driver:
    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        presign_redirects: bool = False,
        addressing_style: str = "auto",
        part_size: int = 8 * MiB,
        multipart_threshold: int = 8 * MiB,
        copy_threshold: int = MAX_PART,
        copy_part_size: int = 512 * MiB,
        max_attempts: int = 5,
    ) -> None:
        """``addressing_style="path"`` suits most S3-compatible servers. ``part_size`` sizes
        the parts of multipart uploads and of upload sessions; ``put`` sends inputs up to
        ``multipart_threshold`` bytes in one request. Both bound the memory a write holds."""
        if not bucket:
            raise ValueError("s3 driver: a bucket is required")
        if addressing_style not in _ADDRESSING_STYLES:
            raise ValueError(f"s3 driver: addressing_style must be one of {_ADDRESSING_STYLES}")
        for name, value in (("part_size", part_size), ("copy_part_size", copy_part_size)):
            if not MIN_PART <= value <= MAX_PART:
                raise ValueError(f"s3 driver: {name} must be within 5 MiB..5 GiB, got {value}")
        if not 0 <= multipart_threshold <= MAX_PART or not 0 < copy_threshold <= MAX_PART:
            raise ValueError("s3 driver: thresholds must be within 0..5 GiB")
        prefix = prefix.strip("/")
        validate_prefix(prefix)
        config = Config(
            region_name=region,
            signature_version="s3v4",
            retries={"max_attempts": max_attempts, "mode": "standard"},
            s3={"addressing_style": cast(AddressingStyle, addressing_style)},
            connect_timeout=10,
            read_timeout=60,
            # Checksums only where S3 requires them: many S3-compatible servers lack the rest.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        with _SESSION_LOCK:  # one boto3 session: its loaded service models are reused
            client = _SESSION.client(
                "s3",
                endpoint_url=endpoint_url,
                region_name=region,
                aws_access_key_id=access_key,
                aws_secret_access_key=secret_key,
                config=config,
            )
        self.bucket = Bucket(client, bucket, f"{prefix}/" if prefix else "")
        self.presign_redirects = presign_redirects
        self.part_size = part_size
        self.multipart_threshold = multipart_threshold
        self.copy_threshold = copy_threshold
        self.copy_part_size = copy_part_size
        self.uploads = S3Uploads(self.bucket, part_size)

    def __repr__(self) -> str:
        return f"S3Driver({self.bucket.name!r}, prefix={self.bucket.prefix!r})"

    # Objects ----------------------------------------------------------------------------------

    def stat(self, key: str) -> ObjectInfo:
        return ObjectInfo(key, self.bucket.head(validate_key(key)))

    def read(
        self, key: str, offset: int = 0, length: int | None = None, chunk_size: int = 1 << 20
    ) -> Iterator[bytes]:
        check_read_args(offset, length, chunk_size)
        validate_key(key)
        if length == 0:
            self.bucket.head(key)
            return iter(())
        end = None if length is None else offset + length
        opened = self.bucket.open(key, offset, end, missing=key)
        if opened is None:  # the range starts at or past the end
            return iter(())
        body, size = opened
        return rechunk(drain(body, key, size, chunk_size), chunk_size)

    def local_path(self, key: str) -> Path | None:
        self.stat(key)
        return None

    def put(self, key: str, chunks: Iterable[bytes]) -> int:
        validate_key(key)
        source = byte_chunks(chunks)
        buffer = bytearray()
        for chunk in source:
            buffer += chunk
            if len(buffer) > self.multipart_threshold:
                return self._put_multipart(key, buffer, source)
        self.bucket.put_bytes(key, bytes(buffer))
        return len(buffer)

    def delete(self, key: str) -> None:
        validate_key(key)
        with translated("delete", key):
            self.bucket.client.delete_object(Bucket=self.bucket.name, Key=self.bucket.full(key))

    def move(self, src: str, dst: str) -> None:
        validate_key(dst)
        size = self.stat(src).size
        if src == dst:
            return
        if size <= self.copy_threshold:
            self.bucket.copy(src, dst, missing=src)
        else:
            with Multipart(self.bucket, dst) as upload:
                for number, start in enumerate(range(0, size, self.copy_part_size), 1):
                    upload.copy(number, src, start, min(size, start + self.copy_part_size))
        self.delete(src)

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
        except ObjectNotFoundError:
            return False
        return True

    def list(self, prefix: str) -> Iterator[str]:
        validate_prefix(prefix)
        return self._keys(f"{prefix}/" if prefix else "")

    def redirect_url(self, key: str, expires_in: int) -> str | None:
        validate_key(key)
        if not self.presign_redirects:
            return None
        with translated("presign", key):
            url: str = self.bucket.client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.bucket.name, "Key": self.bucket.full(key)},
                ExpiresIn=expires_in,
            )
        return url

    # Upload sessions (see moorage.storage.s3uploads) -----------------------------------------

    def initiate_upload(self) -> tuple[str, UploadMetadata]:
        return self.uploads.initiate()

    def lock_upload(self, session_id: str) -> AbstractContextManager[None]:
        # Granted to everyone: appends write new segments and never touch committed ones,
        # so the caller's compare-and-set alone picks the append that counts.
        validate_session_id(session_id)
        return contextlib.nullcontext()

    def append_upload(
        self, session_id: str, metadata: UploadMetadata, offset: int, chunks: Iterable[bytes]
    ) -> tuple[int, UploadMetadata]:
        return self.uploads.append(session_id, metadata, offset, chunks)

    def upload_size(self, session_id: str, metadata: UploadMetadata) -> int:
        return self.uploads.size(session_id, metadata)

    def read_upload(
        self, session_id: str, metadata: UploadMetadata, chunk_size: int = 1 << 20
    ) -> Iterator[bytes]:
        check_read_args(0, None, chunk_size)
        return self.uploads.read(session_id, metadata, chunk_size)

    def complete_upload(self, session_id: str, metadata: UploadMetadata, final_key: str) -> None:
        validate_key(final_key)
        self.uploads.complete(session_id, metadata, final_key, self.exists)

    def cancel_upload(self, session_id: str, metadata: UploadMetadata) -> None:
        self.uploads.cancel(session_id)

    def list_uploads(self) -> Iterator[tuple[str, float]]:
        return self.uploads.sessions()

    # Helpers ----------------------------------------------------------------------------------

    def _put_multipart(self, key: str, buffer: bytearray, source: Iterator[bytes]) -> int:
        total = 0
        number = 0
        with Multipart(self.bucket, key) as upload:
            while True:
                while len(buffer) >= self.part_size:
                    number += 1
                    total += self.part_size
                    upload.upload(number, take(buffer, self.part_size))
                chunk = next(source, None)
                if chunk is None:
                    break
                buffer += chunk
            if buffer or number == 0:
                total += len(buffer)
                upload.upload(number + 1, take(buffer, len(buffer)))
        return total

    def _keys(self, below: str) -> Iterator[str]:
        for item in self.bucket.listing(below):
            if item.key.split("/", 1)[0] == UPLOADS_DIR:
                continue
            try:
                yield validate_key(item.key)
            except ValueError:
                continue
