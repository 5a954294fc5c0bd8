"""Blobs as a repository sees them, their placements and torrent info."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import bindparam, delete, select

from moorage.db import tables as t
from moorage.db.engine import Executor
from moorage.domain.records import Blob, RepositoryReference, TorrentInfo
from moorage.model.sql.base import (
    SqlModelBase,
    blob_from_row,
    ignoring_conflict,
    insert_ignoring_conflict,
)
from moorage.model.sql.manifest_rows import visible_blob_query

# The locations holding one blob, by name (the order placements are reported in).
_PLACEMENT_NAMES = (
    select(t.storage_location.c.name)
    .join(t.blob_placement, t.blob_placement.c.storage_location_id == t.storage_location.c.id)
    .where(t.blob_placement.c.blob_id == bindparam("blob_id"))
    .order_by(t.storage_location.c.name)
)

_TORRENT_INFO = select(t.torrent_info.c.piece_length, t.torrent_info.c.pieces).where(
    t.torrent_info.c.blob_id == bindparam("blob_id"),
    t.torrent_info.c.piece_length == bindparam("piece_length"),
)


def record_torrent_info(conn: Executor, blob_id: int, info: TorrentInfo) -> TorrentInfo:
    """Records torrent info unless the blob has some for this piece length already; returns
    what is recorded (the first write wins)."""
    if info.piece_length <= 0:
        raise ValueError("piece_length must be positive")
    values = {"blob_id": blob_id, "piece_length": info.piece_length, "pieces": info.pieces}
    statement = ignoring_conflict(
        conn, t.torrent_info, ["blob_id", "piece_length"], ["piece_length", "pieces"]
    )
    row = conn.execute(statement, values).first()
    if row is None:  # recorded before
        row = conn.execute(_TORRENT_INFO, values).one()
    return TorrentInfo(row.piece_length, bytes(row.pieces))


class BlobMixin(SqlModelBase):
    def get_repo_blob_by_digest(
        self,
        repository_ref: RepositoryReference,
        blob_digest: str,
        include_placements: bool = False,
    ) -> Blob | None:
        # Every pull and HEAD asks: driver-level queries, no transaction.
        statement, params = visible_blob_query(repository_ref.id, blob_digest, self.now_ms())
        row = self.database.first(statement, params)
        if row is None or not include_placements:
            return None if row is None else blob_from_row(row)
        placements = self.database.all(_PLACEMENT_NAMES, {"blob_id": row.id})
        return blob_from_row(row, tuple(placement.name for placement in placements))

    def mount_blob_into_repository(
        self, blob: Blob, target: RepositoryReference, expiration_seconds: int
    ) -> bool:
        """Links a blob into another repository for a while (a cross-repository mount);
        copies nothing. The caller checks read access to the source."""
        with self.database.write() as conn:
            # FOR SHARE (PostgreSQL): GC deleting the blob (FOR UPDATE) finishes first, and
            # then there is no row, or waits for this link and then sees it (docs/gc.md).
            present = conn.execute(
                select(t.blob.c.id)
                .where(t.blob.c.id == blob.id, t.blob.c.uploading.is_(False))
                .with_for_update(read=True)
            ).scalar()
            repository = self.repository_ref(conn, target.id)
            if present is None or repository is None:
                return False
            conn.execute(
                t.uploaded_blob.insert().values(
                    repository_id=target.id,
                    blob_id=blob.id,
                    uploaded_at=datetime.now(UTC),
                    expires_at_ms=self.now_ms() + expiration_seconds * 1000,
                )
            )
        return True

    def remove_blob_links(self, repository_ref: RepositoryReference, blob: Blob) -> bool:
        """Drops the repository's upload/mount links to the blob (a blob DELETE). Refused
        (False, nothing changed) while a manifest of the repository references the blob:
        the manifest has to go first."""
        with self.database.write() as conn:
            referenced = conn.execute(
                select(t.manifest_blob.c.id)
                .join(t.manifest, t.manifest.c.id == t.manifest_blob.c.manifest_id)
                .where(
                    t.manifest_blob.c.repository_id == repository_ref.id,
                    t.manifest_blob.c.blob_id == blob.id,
                    t.manifest.c.deleted_at_ms.is_(None),
                )
                .limit(1)
            ).first()
            if referenced is not None:
                return False
            conn.execute(
                delete(t.uploaded_blob).where(
                    t.uploaded_blob.c.repository_id == repository_ref.id,
                    t.uploaded_blob.c.blob_id == blob.id,
                )
            )
            # Possibly unreferenced now: GC re-checks it (the other triggers are GC's own).
            candidate = {"kind": "blob", "target_id": blob.id, "due_ms": self.now_ms()}
            conn.execute(ignoring_conflict(conn, t.gc_candidate, ["kind", "target_id"]), candidate)
        return True

    def add_blob_placement(self, blob: Blob, location_name: str) -> None:
        with self.database.write() as conn:
            insert_ignoring_conflict(
                conn,
                t.blob_placement,
                {"blob_id": blob.id, "storage_location_id": self.location_id(conn, location_name)},
                ["blob_id", "storage_location_id"],
            )

    def get_torrent_info(self, blob: Blob) -> TorrentInfo | None:
        with self.database.read() as conn:
            row = conn.execute(
                select(t.torrent_info.c.piece_length, t.torrent_info.c.pieces)
                .where(t.torrent_info.c.blob_id == blob.id)
                .order_by(t.torrent_info.c.id)
                .limit(1)
            ).first()
        return None if row is None else TorrentInfo(row.piece_length, bytes(row.pieces))

    def set_torrent_info(self, blob: Blob, piece_length: int, pieces: bytes) -> TorrentInfo:
        with self.database.write() as conn:
            return record_torrent_info(conn, blob.id, TorrentInfo(piece_length, pieces))
