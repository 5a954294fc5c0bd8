"""Queries for background workers: blobs to replicate, upload sessions to clean up."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import exists, select

from moorage.db import tables as t
from moorage.domain.records import Blob, BlobUpload
from moorage.model.sql.base import SqlModelBase
from moorage.model.sql.uploads import upload_query, upload_record


class MaintenanceMixin(SqlModelBase):
    def list_blobs_missing_placement(
        self, location_name: str, *, after_id: int = 0, limit: int = 100
    ) -> list[Blob]:
        """Complete content-addressed blobs with no placement at ``location_name``, by id,
        with their placements loaded (where a copy can come from)."""
        with self.database.read() as conn:
            location_id = self.location_id(conn, location_name)
            rows = conn.execute(
                select(t.blob)
                .where(
                    t.blob.c.id > after_id,
                    t.blob.c.uploading.is_(False),
                    t.blob.c.content_addressed.is_(True),
                    ~exists().where(
                        t.blob_placement.c.blob_id == t.blob.c.id,
                        t.blob_placement.c.storage_location_id == location_id,
                    ),
                )
                .order_by(t.blob.c.id)
                .limit(limit)
            ).all()
            return [self.blob_record(conn, row, include_placements=True) for row in rows]

    def list_stale_blob_uploads(
        self, created_before: datetime, limit: int = 100
    ) -> list[BlobUpload]:
        """Upload sessions started before ``created_before``, oldest first."""
        with self.database.read() as conn:
            rows = conn.execute(
                upload_query()
                .where(t.blob_upload.c.created < created_before)
                .order_by(t.blob_upload.c.created)
                .limit(limit)
            ).all()
        return [upload_record(row) for row in rows]

    def known_blob_upload_ids(self, upload_ids: Iterable[str]) -> set[str]:
        """Which of these session ids still have a session record."""
        wanted = list(upload_ids)
        if not wanted:
            return set()
        with self.database.read() as conn:
            found = conn.execute(
                select(t.blob_upload.c.uuid).where(t.blob_upload.c.uuid.in_(wanted))
            ).scalars()
            return {str(value) for value in found}
