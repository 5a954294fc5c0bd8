"""Blob upload sessions and committing them into blobs.

Every push runs these for each of its blobs, so the statements are built once with bind
parameters, run on the raw driver (``Database.fast_write``, ``Database.first``), and each
transaction issues as few as it can: records are built from the values just written instead
of being read back.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, case, delete, func, literal, or_, select, update

from moorage.db import tables as t
from moorage.db.engine import Executor
from moorage.domain.digest import Digest
from moorage.domain.records import Blob, BlobUpload, RepositoryReference, TorrentInfo
from moorage.model.sql.base import (
    SqlModelBase,
    blob_from_row,
    ignoring_conflict,
    insert_ignoring_conflict,
    new_uuid,
)
from moorage.model.sql.blobs import record_torrent_info


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


def _typed(name: str, column: Any) -> Any:
    """A bind parameter with the column's type (JSON encoding, timestamps, casts)."""
    return bindparam(name, type_=column.type)


_C = t.blob_upload.c
# The session row, only if the repository still exists: one statement, no prior check.
_CREATE_UPLOAD = (
    t.blob_upload.insert()
    .from_select(
        [
            _C.uuid,
            _C.repository_id,
            _C.storage_location_id,
            _C.storage_metadata,
            _C.byte_count,
            _C.chunk_count,
            _C.created,
            _C.client,
        ],
        select(
            _typed("uuid", _C.uuid),
            t.repository.c.id,
            _typed("location_id", _C.storage_location_id),
            _typed("storage_metadata", _C.storage_metadata),
            literal(0, _C.byte_count.type),
            literal(0, _C.chunk_count.type),
            _typed("created", _C.created),
            _typed("client", _C.client),
        ).where(t.repository.c.id == bindparam("repository_id")),
    )
    .returning(_C.id)
)
_UPLOAD_BY_UUID = upload_query().where(
    _C.uuid == bindparam("upload_id"), _C.repository_id == bindparam("repository_id")
)
# A compare-and-set: the progress counts only over the state the writer started from, so
# of two appends that raced from one state, one counts and the other changes nothing.
_UPDATE_UPLOAD = (
    update(t.blob_upload)
    .where(
        _C.id == bindparam("upload_pk"),
        _C.byte_count == bindparam("old_byte_count"),
        _C.chunk_count == bindparam("old_chunk_count"),
    )
    .values(
        uncompressed_byte_count=bindparam("uncompressed_byte_count"),
        piece_hashes=bindparam("piece_hashes"),
        piece_sha_state=bindparam("piece_sha_state"),
        storage_metadata=bindparam("storage_metadata"),
        byte_count=bindparam("byte_count"),
        chunk_count=bindparam("chunk_count"),
        sha_state=bindparam("sha_state"),
    )
)
# Both counts in one probe of two indexes (repository_id leads the unique key; client has
# its own); a NULL client matches no row.
_OPEN_UPLOAD_COUNTS = select(
    func.coalesce(func.sum(case((_C.repository_id == bindparam("repository_id"), 1), else_=0)), 0),
    func.coalesce(func.sum(case((_C.client == bindparam("client"), 1), else_=0)), 0),
).where(or_(_C.repository_id == bindparam("repository_id"), _C.client == bindparam("client")))
_DELETE_UPLOAD = delete(t.blob_upload).where(_C.id == bindparam("upload_pk"))
_UPLOAD_PRESENT = select(_C.id).where(_C.id == bindparam("upload_pk"))
_BLOB_BY_DIGEST = select(t.blob).where(t.blob.c.digest == bindparam("digest"))
_LINK_BLOB = t.uploaded_blob.insert()
_PLACE_BLOB = t.blob_placement.insert()
_BLOB_COLUMNS = tuple(column.name for column in t.blob.columns)
# An existing row left incomplete (a legacy or interrupted push): sizes it lacks, not uploading.
_COMPLETE_BLOB = (
    update(t.blob)
    .where(t.blob.c.id == bindparam("blob_pk"))
    .values(
        compressed_size=func.coalesce(
            t.blob.c.compressed_size, _typed("compressed", t.blob.c.compressed_size)
        ),
        uncompressed_size=func.coalesce(
            t.blob.c.uncompressed_size, _typed("uncompressed", t.blob.c.uncompressed_size)
        ),
        uploading=False,
    )
)


class UploadMixin(SqlModelBase):
    def create_blob_upload(
        self,
        repository_ref: RepositoryReference,
        upload_id: str,
        location_name: str,
        storage_metadata: dict[str, Any],
        *,
        client: str | None = None,
    ) -> BlobUpload | None:
        created = datetime.now(UTC)
        with self.database.fast_write() as conn:
            upload_pk = conn.execute(
                _CREATE_UPLOAD,
                {
                    "uuid": upload_id,
                    "repository_id": repository_ref.id,
                    "location_id": self.location_id(conn, location_name),
                    "storage_metadata": storage_metadata,
                    "created": created,
                    "client": client,
                },
            ).scalar()
            if upload_pk is None:
                return None  # the repository is gone
            return BlobUpload(
                id=int(upload_pk),
                upload_id=upload_id,
                repository_id=repository_ref.id,
                location_name=location_name,
                storage_metadata=dict(storage_metadata),
                byte_count=0,
                chunk_count=0,
                uncompressed_byte_count=None,
                sha_state=None,
                piece_sha_state=None,
                piece_hashes=None,
                # As a read gives it back: SQLite keeps no time zone.
                created=created if conn.dialect.name == "postgresql" else _naive(created),
            )

    def open_upload_counts(
        self, repository_ref: RepositoryReference, client: str | None
    ) -> tuple[int, int]:
        params = {"repository_id": repository_ref.id, "client": client}
        row = self.database.first(_OPEN_UPLOAD_COUNTS, params)
        return (0, 0) if row is None else (int(row[0]), int(row[1]))

    def lookup_blob_upload(
        self, repository_ref: RepositoryReference, blob_upload_id: str
    ) -> BlobUpload | None:
        params = {"upload_id": blob_upload_id, "repository_id": repository_ref.id}
        row = self.database.first(_UPLOAD_BY_UUID, params)
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
        values = {
            "uncompressed_byte_count": uncompressed_byte_count,
            "piece_hashes": piece_hashes,
            "piece_sha_state": piece_sha_state,
            "storage_metadata": storage_metadata,
            "byte_count": byte_count,
            "chunk_count": chunk_count,
            "sha_state": sha_state,
        }
        with self.database.fast_write() as conn:
            result = conn.execute(
                _UPDATE_UPLOAD,
                {
                    "upload_pk": blob_upload.id,
                    "old_byte_count": blob_upload.byte_count,
                    "old_chunk_count": blob_upload.chunk_count,
                    **values,
                },
            )
        if result.rowcount != 1:
            return None
        # Nothing else of a session ever changes: the record is what was just written.
        return BlobUpload(
            id=blob_upload.id,
            upload_id=blob_upload.upload_id,
            repository_id=blob_upload.repository_id,
            location_name=blob_upload.location_name,
            storage_metadata=dict(storage_metadata),
            byte_count=byte_count,
            chunk_count=chunk_count,
            uncompressed_byte_count=uncompressed_byte_count,
            sha_state=sha_state,
            piece_sha_state=piece_sha_state,
            piece_hashes=piece_hashes,
            created=blob_upload.created,
        )

    def delete_blob_upload(self, blob_upload: BlobUpload) -> None:
        with self.database.fast_write() as conn:
            conn.execute(_DELETE_UPLOAD, {"upload_pk": blob_upload.id})

    def commit_blob_upload(
        self,
        blob_upload: BlobUpload,
        blob_digest_str: str,
        blob_expiration_seconds: int,
        *,
        torrent_info: TorrentInfo | None = None,
    ) -> Blob | None:
        """Digest verification and moving the bytes into place happen before this, in the
        upload service. Sizes come from ``blob_upload``: pass the latest record. With
        ``torrent_info``, records it in the same transaction (first write wins, as with
        ``set_torrent_info``)."""
        Digest.parse(blob_digest_str)
        session = {"upload_pk": blob_upload.id}
        with self.database.fast_write() as conn:
            # A plain read, not the DELETE first: on PostgreSQL a concurrent commit of the
            # same session must not wait on its row lock (both go through, as ever).
            if conn.execute(_UPLOAD_PRESENT, session).first() is None:
                return None
            blob = self._ensure_blob(conn, blob_upload, blob_digest_str)
            conn.execute(
                _LINK_BLOB,
                {
                    "repository_id": blob_upload.repository_id,
                    "blob_id": blob.id,
                    "uploaded_at": datetime.now(UTC),
                    "expires_at_ms": self.now_ms() + blob_expiration_seconds * 1000,
                },
            )
            if torrent_info is not None:
                record_torrent_info(conn, blob.id, torrent_info)
            conn.execute(_DELETE_UPLOAD, session)
            return blob

    def _ensure_blob(self, conn: Executor, upload: BlobUpload, digest: str) -> Blob:
        """The global blob row for the digest (created or completed), placed at the
        upload's location, with its placements."""
        location_id = self.location_id(conn, upload.location_name)
        inserted = conn.execute(
            ignoring_conflict(conn, t.blob, ["digest"], _BLOB_COLUMNS),
            {
                "uuid": new_uuid(),
                "digest": digest,
                "compressed_size": upload.byte_count,
                "uncompressed_size": upload.uncompressed_byte_count,
                "uploading": False,
                "content_addressed": True,
                "created": datetime.now(UTC),
            },
        ).first()
        placement = {"blob_id": 0, "storage_location_id": location_id}
        if inserted is not None:  # a new blob: its only placement is the one added now
            placement["blob_id"] = inserted.id
            conn.execute(_PLACE_BLOB, placement)
            return blob_from_row(inserted, (upload.location_name,))
        row = conn.execute(_BLOB_BY_DIGEST, {"digest": digest}).one()
        incomplete = row.compressed_size is None or row.uploading
        if incomplete or (
            row.uncompressed_size is None and upload.uncompressed_byte_count is not None
        ):
            sizes = {
                "blob_pk": row.id,
                "compressed": upload.byte_count,
                "uncompressed": upload.uncompressed_byte_count,
            }
            conn.execute(_COMPLETE_BLOB, sizes)
            row = conn.execute(_BLOB_BY_DIGEST, {"digest": digest}).one()
        placement["blob_id"] = row.id
        insert_ignoring_conflict(
            conn, t.blob_placement, placement, ["blob_id", "storage_location_id"]
        )
        return self.blob_record(conn, row, include_placements=True)


def _naive(moment: datetime) -> datetime:
    return moment.replace(tzinfo=None)
