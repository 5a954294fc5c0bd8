"""Manifest rows as records, and the blob visibility rule shared by manifests and blobs."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Row, bindparam, exists, or_, select

from moorage.db import tables as t
from moorage.domain.digest import EMPTY_LAYER_DIGEST
from moorage.domain.records import Manifest

IN_BATCH = 500  # values per IN list: far below SQLite's and PostgreSQL's parameter limits


def manifest_from_row(row: Row[Any], **extra: Any) -> Manifest:
    return Manifest(
        id=row.id,
        repository_id=row.repository_id,
        digest=row.digest,
        media_type=row.media_type,
        internal_manifest_bytes=bytes(row.manifest_bytes),
        artifact_type=row.artifact_type,
        subject_digest=row.subject_digest,
        layers_compressed_size=row.layers_compressed_size,
        **extra,
    )


def _visible_blob_statement(*, many: bool = False) -> Any:
    """Complete blobs with a digest that a repository sees: through one of its (not
    deleted) manifests, its V1-pushed legacy images or unexpired upload/mount links.
    Built once with bind parameters: building a statement costs more than running it."""
    repository_id: Any = bindparam("repository_id")
    linked = or_(
        exists().where(
            t.manifest_blob.c.blob_id == t.blob.c.id,
            t.manifest_blob.c.repository_id == repository_id,
            t.manifest.c.id == t.manifest_blob.c.manifest_id,
            t.manifest.c.deleted_at_ms.is_(None),
        ),
        exists().where(
            t.legacy_image.c.blob_id == t.blob.c.id,
            t.legacy_image.c.repository_id == repository_id,
            t.legacy_image.c.v1_pushed.is_(True),
        ),
        exists().where(
            t.uploaded_blob.c.blob_id == t.blob.c.id,
            t.uploaded_blob.c.repository_id == repository_id,
            t.uploaded_blob.c.expires_at_ms > bindparam("now_ms"),
        ),
    )
    if many:
        digests = t.blob.c.digest.in_(bindparam("digests", expanding=True))
        return select(t.blob).where(digests, t.blob.c.uploading.is_(False), linked)
    return (
        select(t.blob)
        .where(t.blob.c.digest == bindparam("digest"), t.blob.c.uploading.is_(False), linked)
        .limit(1)
    )


_VISIBLE_BLOB = _visible_blob_statement()
_VISIBLE_BLOBS = _visible_blob_statement(many=True)
# The shared empty layer is visible in every repository.
_GLOBAL_BLOB = (
    select(t.blob)
    .where(t.blob.c.digest == bindparam("digest"), t.blob.c.uploading.is_(False))
    .limit(1)
)


def visible_blob_query(repository_id: int, digest: str, now_ms: int) -> tuple[Any, dict[str, Any]]:
    """The prebuilt statement and parameters finding a blob the repository sees."""
    if digest == EMPTY_LAYER_DIGEST:
        return _GLOBAL_BLOB, {"digest": digest}
    return _VISIBLE_BLOB, {"repository_id": repository_id, "digest": digest, "now_ms": now_ms}


def visible_blob(conn: Connection, repository_id: int, digest: str, now_ms: int) -> Any:
    statement, params = visible_blob_query(repository_id, digest, now_ms)
    return conn.execute(statement, params).first()


def visible_blobs(
    conn: Connection, repository_id: int, digests: Iterable[str], now_ms: int
) -> dict[str, Any]:
    """``visible_blob`` for many digests in one query: rows by digest, absent ones left out."""
    wanted = set(digests)
    found: dict[str, Any] = {}
    if EMPTY_LAYER_DIGEST in wanted:
        wanted.discard(EMPTY_LAYER_DIGEST)
        row = conn.execute(_GLOBAL_BLOB, {"digest": EMPTY_LAYER_DIGEST}).first()
        if row is not None:
            found[EMPTY_LAYER_DIGEST] = row
    ordered = sorted(wanted)
    for start in range(0, len(ordered), IN_BATCH):
        params = {
            "repository_id": repository_id,
            "digests": ordered[start : start + IN_BATCH],
            "now_ms": now_ms,
        }
        for row in conn.execute(_VISIBLE_BLOBS, params):
            found[row.digest] = row
    return found
