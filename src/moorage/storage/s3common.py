"""Shared plumbing of the S3 driver: the bucket handle, error translation, bounded buffers.

Every S3 object key is ``<prefix>/<storage key>``; :class:`Bucket` does that join in one place.
botocore errors become :class:`ObjectNotFoundError` (a 404 on the object named by the caller) or
:class:`StorageError`; exceptions of the caller's own chunk iterators pass through untouched.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from moorage.storage.driver import ObjectNotFoundError, StorageError

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client
    from types_boto3_s3.type_defs import (
        CompletedPartTypeDef,
        CopySourceTypeDef,
        ObjectIdentifierTypeDef,
    )

MiB = 1 << 20
MIN_PART = 5 * MiB
"""S3's smallest part (every part of a multipart upload but the last)."""
MAX_PART = 5 * 1024 * MiB
"""S3's largest part, and the largest object ``PutObject`` / ``CopyObject`` accept."""

_NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound", "NoSuchUpload"})


def is_not_found(exc: ClientError) -> bool:
    code = exc.response.get("Error", {}).get("Code", "")
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code != "NoSuchBucket" and (code in _NOT_FOUND_CODES or status == 404)


def is_invalid_range(exc: ClientError) -> bool:
    code = exc.response.get("Error", {}).get("Code", "")
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code == "InvalidRange" or status == 416


@contextlib.contextmanager
def translated(operation: str, key: str, *, missing: str | None = None) -> Iterator[None]:
    """botocore errors → ObjectNotFoundError(``missing``) for a 404 when ``missing`` is given,
    else StorageError naming the operation and key."""
    try:
        yield
    except ClientError as exc:
        if missing is not None and is_not_found(exc):
            raise ObjectNotFoundError(missing) from exc
        raise StorageError(f"s3 {operation} {key}: {exc}") from exc
    except BotoCoreError as exc:
        raise StorageError(f"s3 {operation} {key}: {exc}") from exc


def take(buffer: bytearray, size: int) -> bytes:
    """Remove and return the first ``size`` bytes of ``buffer`` (one copy)."""
    with memoryview(buffer) as view:
        data = bytes(view[:size])
    del buffer[:size]
    return data


def rechunk(pieces: Iterable[bytes], size: int) -> Iterator[bytes]:
    """The bytes of ``pieces`` in pieces of exactly ``size`` (the last may be shorter)."""
    buffer = bytearray()
    for piece in pieces:
        if not buffer and len(piece) == size:
            yield piece
            continue
        buffer += piece
        while len(buffer) >= size:
            yield take(buffer, size)
    if buffer:
        yield bytes(buffer)


def drain(body: Any, key: str, length: int, chunk_size: int) -> Iterator[bytes]:
    """``length`` bytes of a StreamingBody (None: an empty range) in ``chunk_size`` reads."""
    try:
        remaining = length
        while remaining > 0:
            with translated("get", key):
                data = body.read(min(chunk_size, remaining)) if body is not None else b""
            if not data:
                raise StorageError(f"s3 object {key} ended {remaining} bytes early")
            remaining -= len(data)
            yield data
    finally:
        if body is not None:
            body.close()


@dataclass(frozen=True, slots=True)
class Listed:
    key: str
    """The storage key (without the bucket prefix)."""
    size: int
    modified: datetime


@dataclass(frozen=True)
class Bucket:
    client: S3Client
    name: str
    prefix: str
    """``""`` or a prefix ending in ``/``."""

    def full(self, key: str) -> str:
        return f"{self.prefix}{key}"

    def source(self, key: str) -> CopySourceTypeDef:
        """``key`` as the ``CopySource`` of a server-side copy."""
        return {"Bucket": self.name, "Key": self.full(key)}

    def copy(self, src: str, dst: str, *, missing: str | None = None) -> None:
        """Server-side ``CopyObject`` (up to 5 GiB)."""
        with translated("copy", src, missing=missing):
            self.client.copy_object(
                Bucket=self.name, Key=self.full(dst), CopySource=self.source(src)
            )

    def head(self, key: str, *, missing: str | None = None) -> int:
        with translated("head", key, missing=missing or key):
            response = self.client.head_object(Bucket=self.name, Key=self.full(key))
        return int(response["ContentLength"])

    def put_bytes(self, key: str, data: bytes) -> None:
        with translated("put", key):
            self.client.put_object(Bucket=self.name, Key=self.full(key), Body=data)

    def get_bytes(self, key: str, size: int) -> bytes:
        """The first ``size`` bytes of ``key`` (small objects only: loads them)."""
        return b"".join(self.stream(key, 0, size, 1 << 20))

    def open(
        self, key: str, start: int, end: int | None, *, missing: str | None = None
    ) -> tuple[Any, int] | None:
        """``(botocore StreamingBody, its length)`` over ``[start, end)`` (to the end of the
        object when None); None when the range starts at or past the end of the object."""
        last = "" if end is None else str(end - 1)
        try:
            with translated("get", key, missing=missing):
                if start == 0 and end is None:
                    response = self.client.get_object(Bucket=self.name, Key=self.full(key))
                else:
                    response = self.client.get_object(
                        Bucket=self.name, Key=self.full(key), Range=f"bytes={start}-{last}"
                    )
        except StorageError as exc:
            if isinstance(exc.__cause__, ClientError) and is_invalid_range(exc.__cause__):
                return None
            raise
        return response["Body"], int(response["ContentLength"])

    def stream(self, key: str, start: int, end: int, chunk_size: int) -> Iterator[bytes]:
        """Exactly the bytes ``[start, end)`` of ``key`` (opened lazily); StorageError if the
        object holds fewer."""
        if end > start:
            opened = self.open(key, start, end)
            body = None if opened is None else opened[0]
            yield from drain(body, key, end - start, chunk_size)

    def listing(self, prefix: str) -> Iterator[Listed]:
        """Every object whose full key starts with ``prefix`` (relative to the bucket prefix)."""
        paginator = self.client.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=self.name, Prefix=self.full(prefix))
        with translated("list", prefix or "/"):
            for page in pages:
                for item in page.get("Contents", []):
                    yield Listed(
                        item["Key"][len(self.prefix) :], item["Size"], item["LastModified"]
                    )

    def delete_many(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):
            batch: list[ObjectIdentifierTypeDef] = [
                {"Key": self.full(key)} for key in keys[start : start + 1000]
            ]
            with translated("delete", keys[start]):
                response = self.client.delete_objects(
                    Bucket=self.name, Delete={"Objects": batch, "Quiet": True}
                )
            if response.get("Errors"):
                raise StorageError(f"s3 delete failed: {response['Errors'][:3]}")


class Multipart:
    """One multipart upload into ``key``: parts uploaded or copied server-side, then completed
    (or aborted on any failure, when used as a context manager)."""

    def __init__(self, bucket: Bucket, key: str) -> None:
        self.bucket = bucket
        self.key = key
        with translated("create_multipart_upload", key):
            response = bucket.client.create_multipart_upload(
                Bucket=bucket.name, Key=bucket.full(key)
            )
        self.upload_id = response["UploadId"]
        self._etags: dict[int, str] = {}

    def __enter__(self) -> Multipart:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is None:
            self.complete()
        else:
            self.abort()

    def upload(self, number: int, data: bytes) -> None:
        with translated("upload_part", self.key):
            response = self.bucket.client.upload_part(
                Bucket=self.bucket.name,
                Key=self.bucket.full(self.key),
                UploadId=self.upload_id,
                PartNumber=number,
                Body=data,
            )
        self._etags[number] = response["ETag"]

    def copy(
        self, number: int, source: str, start: int | None = None, end: int | None = None
    ) -> None:
        """Part ``number`` := bytes ``[start, end)`` of ``source`` (the whole object if None)."""
        client, target = self.bucket.client, self.bucket.full(self.key)
        with translated("upload_part_copy", source):
            if start is None or end is None:
                response = client.upload_part_copy(
                    Bucket=self.bucket.name,
                    Key=target,
                    UploadId=self.upload_id,
                    PartNumber=number,
                    CopySource=self.bucket.source(source),
                )
            else:
                response = client.upload_part_copy(
                    Bucket=self.bucket.name,
                    Key=target,
                    UploadId=self.upload_id,
                    PartNumber=number,
                    CopySource=self.bucket.source(source),
                    CopySourceRange=f"bytes={start}-{end - 1}",
                )
        self._etags[number] = response["CopyPartResult"]["ETag"]

    def complete(self) -> None:
        parts: list[CompletedPartTypeDef] = [
            {"PartNumber": n, "ETag": etag} for n, etag in sorted(self._etags.items())
        ]
        with translated("complete_multipart_upload", self.key):
            self.bucket.client.complete_multipart_upload(
                Bucket=self.bucket.name,
                Key=self.bucket.full(self.key),
                UploadId=self.upload_id,
                MultipartUpload={"Parts": parts},
            )

    def abort(self) -> None:
        with contextlib.suppress(ClientError, BotoCoreError):
            self.bucket.client.abort_multipart_upload(
                Bucket=self.bucket.name, Key=self.bucket.full(self.key), UploadId=self.upload_id
            )
