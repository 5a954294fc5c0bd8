"""Queries for background workers: blobs to replicate or verify, upload sessions to clean up."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import ColumnElement, FromClause, delete, exists, func, select

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

    def lookup_blob(self, digest: str) -> Blob | None:
        """The global blob recorded under ``digest``, with its placements, or None."""
        with self.database.read() as conn:
            row = conn.execute(select(t.blob).where(t.blob.c.digest == digest)).first()
            return None if row is None else self.blob_record(conn, row, include_placements=True)

    def remove_blob_placement(self, blob: Blob, location_name: str) -> bool:
        """Forget that ``location_name`` holds the blob's bytes; whether a placement went."""
        with self.database.write() as conn:
            location_id = self.location_id(conn, location_name)
            removed = conn.execute(
                delete(t.blob_placement).where(
                    t.blob_placement.c.blob_id == blob.id,
                    t.blob_placement.c.storage_location_id == location_id,
                )
            )
            return bool(removed.rowcount)

    def placed_blob_totals(
        self, location_name: str, *, after_digest: str | None = None
    ) -> tuple[int, int]:
        """``(blobs, bytes)`` recorded at ``location_name`` with a digest sorting after
        ``after_digest`` (all when None): what a verify pass there still has to read."""
        with self.database.read() as conn:
            location_id = self.location_id(conn, location_name)
            query = (
                select(func.count(), func.coalesce(func.sum(t.blob.c.compressed_size), 0))
                .select_from(t.blob)
                .join(t.blob_placement, t.blob_placement.c.blob_id == t.blob.c.id)
                .where(
                    t.blob_placement.c.storage_location_id == location_id,
                    t.blob.c.digest.is_not(None),
                )
            )
            if after_digest is not None:
                query = query.where(t.blob.c.digest > after_digest)
            count, size = conn.execute(query).one()
            return int(count), int(size)

    def placed_totals_by_location(self) -> dict[str, tuple[int, int]]:
        """``{location: (blobs, bytes)}`` of every placement (derived objects too), in one
        grouped query; a location with no placement is absent."""
        placements = t.blob_placement.join(t.blob, t.blob.c.id == t.blob_placement.c.blob_id)
        return self._totals_by_location(
            placements, t.blob_placement.c.storage_location_id, t.blob.c.compressed_size
        )

    def open_upload_totals_by_location(self) -> dict[str, tuple[int, int]]:
        """``{location: (sessions, bytes received)}`` of the upload sessions open now."""
        return self._totals_by_location(
            t.blob_upload, t.blob_upload.c.storage_location_id, t.blob_upload.c.byte_count
        )

    def _totals_by_location(
        self, rows: FromClause, location_id: ColumnElement[int], size: ColumnElement[int]
    ) -> dict[str, tuple[int, int]]:
        """``{location name: (row count, summed size)}`` over ``rows``, one grouped query."""
        query = (
            select(t.storage_location.c.name, func.count(), func.coalesce(func.sum(size), 0))
            .select_from(rows.join(t.storage_location, t.storage_location.c.id == location_id))
            .group_by(t.storage_location.c.name)
        )
        with self.database.read() as conn:
            return {str(name): (int(n), int(total)) for name, n, total in conn.execute(query)}

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
