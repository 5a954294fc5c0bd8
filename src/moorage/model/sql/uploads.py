"""Blob upload sessions and committing them into blobs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, delete, select, update

from moorage.db import tables as t
from moorage.domain.digest import Digest
from moorage.domain.records import Blob, BlobUpload, RepositoryReference
from moorage.model.sql.base import SqlModelBase, insert_ignoring_conflict, new_uuid


def upload_query() -> Any:
    return select(t.blob_upload, t.storage_location.c.name.label("location_name")).join(
        t.storage_location, t.storage_location.c.id == t.blob_upload.c.storage_location_id
    )


def upload_record(row: Any) -> BlobUpload:
    return BlobUpload(
        id=row.id,
        upload_id=row.uuid,
        repository_id=row.repository_id,
        location_name=row.location_name,
        storage_metadata=dict(row.storage_metadata or {}),
        byte_count=row.byte_count,
        chunk_count=row.chunk_count,
        uncompressed_byte_count=row.uncompressed_byte_count,
        sha_state=None if row.sha_state is None else bytes(row.sha_state),
        piece_sha_state=None if row.piece_sha_state is None else bytes(row.piece_sha_state),
        piece_hashes=None if row.piece_hashes is None else bytes(row.piece_hashes),
        created=row.created,
    )


class UploadMixin(SqlModelBase):
    def create_blob_upload(
        self,
        repository_ref: RepositoryReference,
        upload_id: str,
        location_name: str,
        storage_metadata: dict[str, Any],
    ) -> BlobUpload | None:
        with self.database.write() as conn:
            if self.repository_ref(conn, repository_ref.id) is None:
                return None
            upload_pk = conn.execute(
                t.blob_upload.insert().values(
                    uuid=upload_id,
                    repository_id=repository_ref.id,
                    storage_location_id=self.location_id(conn, location_name),
                    storage_metadata=storage_metadata,
                    byte_count=0,
                    chunk_count=0,
                    created=datetime.now(UTC),
                )
            ).inserted_primary_key[0]  # type: ignore[index]
            return upload_record(
                conn.execute(upload_query().where(t.blob_upload.c.id == upload_pk)).one()
            )

    def lookup_blob_upload(
        self, repository_ref: RepositoryReference, blob_upload_id: str
    ) -> BlobUpload | None:
        with self.database.read() as conn:
            row = conn.execute(
                upload_query().where(
                    t.blob_upload.c.uuid == blob_upload_id,
                    t.blob_upload.c.repository_id == repository_ref.id,
                )
            ).first()
        return None if row is None else upload_record(row)

    def update_blob_upload(
        self,
        blob_upload: BlobUpload,
        uncompressed_byte_count: int | None,
        piece_hashes: bytes | None,
        piece_sha_state: bytes | None,
        storage_metadata: dict[str, Any],
        byte_count: int,
        chunk_count: int,
        sha_state: bytes | None,
    ) -> BlobUpload | None:
        with self.database.write() as conn:
            result = conn.execute(
                update(t.blob_upload)
                .where(t.blob_upload.c.id == blob_upload.id)
                .values(
                    uncompressed_byte_count=uncompressed_byte_count,
                    piece_hashes=piece_hashes,
                    piece_sha_state=piece_sha_state,
                    storage_metadata=storage_metadata,
                    byte_count=byte_count,
                    chunk_count=chunk_count,
                    sha_state=sha_state,
                )
            )
            if result.rowcount != 1:
                return None
            return upload_record(
                conn.execute(upload_query().where(t.blob_upload.c.id == blob_upload.id)).one()
            )

    def delete_blob_upload(self, blob_upload: BlobUpload) -> None:
        with self.database.write() as conn:
            conn.execute(delete(t.blob_upload).where(t.blob_upload.c.id == blob_upload.id))

    def commit_blob_upload(
        self, blob_upload: BlobUpload, blob_digest_str: str, blob_expiration_seconds: int
    ) -> Blob | None:
        """Digest verification and moving the bytes into place happen before this, in the
        upload service. Sizes come from ``blob_upload``: pass the latest record."""
        Digest.parse(blob_digest_str)
        with self.database.write() as conn:
            present = conn.execute(
                select(t.blob_upload.c.id).where(t.blob_upload.c.id == blob_upload.id)
            ).scalar()
            if present is None:
                return None
            blob_id = self._ensure_blob(conn, blob_upload, blob_digest_str)
            conn.execute(
                t.uploaded_blob.insert().values(
                    repository_id=blob_upload.repository_id,
                    blob_id=blob_id,
                    uploaded_at=datetime.now(UTC),
                    expires_at_ms=self.now_ms() + blob_expiration_seconds * 1000,
                )
            )
            conn.execute(delete(t.blob_upload).where(t.blob_upload.c.id == blob_upload.id))
            row = conn.execute(select(t.blob).where(t.blob.c.id == blob_id)).one()
            return self.blob_record(conn, row, include_placements=True)

    def _ensure_blob(self, conn: Connection, upload: BlobUpload, digest: str) -> int:
        """The global blob row for the digest (created or completed), placed at the
        upload's location."""
        insert_ignoring_conflict(
            conn,
            t.blob,
            {
                "uuid": new_uuid(),
                "digest": digest,
                "compressed_size": upload.byte_count,
                "uncompressed_size": upload.uncompressed_byte_count,
                "uploading": False,
                "content_addressed": True,
                "created": datetime.now(UTC),
            },
            ["digest"],
        )
        row = conn.execute(select(t.blob).where(t.blob.c.digest == digest)).one()
        fill: dict[str, Any] = {}
        if row.compressed_size is None:
            fill["compressed_size"] = upload.byte_count
        if row.uncompressed_size is None and upload.uncompressed_byte_count is not None:
            fill["uncompressed_size"] = upload.uncompressed_byte_count
        if row.uploading:
            fill["uploading"] = False
        if fill:
            conn.execute(update(t.blob).where(t.blob.c.id == row.id).values(**fill))
        insert_ignoring_conflict(
            conn,
            t.blob_placement,
            {
                "blob_id": row.id,
                "storage_location_id": self.location_id(conn, upload.location_name),
            },
            ["blob_id", "storage_location_id"],
        )
        return int(row.id)
