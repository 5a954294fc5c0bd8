"""Reading legacy V1 images (with their ancestor chains) as records."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Row, bindparam, select

from moorage.db import tables as t
from moorage.domain.records import LegacyImage
from moorage.model.sql.manifest_rows import IN_BATCH


def ancestor_ids(ancestors: str) -> list[int]:
    """``/1/5/9/`` → [1, 5, 9] (root first)."""
    return [int(part) for part in ancestors.strip("/").split("/") if part]


def _query() -> Any:
    return select(
        t.legacy_image,
        t.blob.c.compressed_size.label("blob_size"),
        t.blob.c.uploading.label("blob_uploading"),
        t.blob.c.digest.label("blob_digest"),
    ).join(t.blob, t.blob.c.id == t.legacy_image.c.blob_id)


def _bare(row: Row[Any], **extra: Any) -> LegacyImage:
    return LegacyImage(
        id=row.id,
        docker_image_id=row.docker_image_id,
        created=row.created,
        comment=row.comment,
        command=row.command,
        image_size=row.blob_size,
        aggregate_size=row.aggregate_size,
        uploading=bool(row.blob_uploading),
        v1_metadata_string=row.v1_json_metadata,
        blob_digest=row.blob_digest,
        **extra,
    )


_ROWS_BY_ID = _query().where(t.legacy_image.c.id.in_(bindparam("ids", expanding=True)))


def load_rows(conn: Connection, ids: Iterable[int]) -> dict[int, Row[Any]]:
    wanted = sorted(set(ids))
    found: dict[int, Row[Any]] = {}
    for start in range(0, len(wanted), IN_BATCH):
        rows = conn.execute(_ROWS_BY_ID, {"ids": wanted[start : start + IN_BATCH]})
        found.update((row.id, row) for row in rows)
    return found


def rows_of_repository(conn: Connection, repository_id: int) -> dict[int, Row[Any]]:
    rows = conn.execute(
        _query()
        .where(t.legacy_image.c.repository_id == repository_id)
        .order_by(t.legacy_image.c.id)
    )
    return {row.id: row for row in rows}


def with_parents(row: Row[Any], known: dict[int, Row[Any]], **extra: Any) -> LegacyImage:
    """The image with parents (direct parent first) from already loaded rows."""
    parents = tuple(_bare(known[i]) for i in reversed(ancestor_ids(row.ancestors)) if i in known)
    return _bare(row, _parents=parents, **extra)


def load_images(
    conn: Connection, ids: Iterable[int], include_parents: bool
) -> dict[int, LegacyImage]:
    """Images by id, optionally with their parents, in two queries at most."""
    rows = load_rows(conn, ids)
    if not include_parents:
        return {i: _bare(row) for i, row in rows.items()}
    needed = {a for row in rows.values() for a in ancestor_ids(row.ancestors)} - rows.keys()
    known = {**rows, **load_rows(conn, needed)}
    return {i: with_parents(row, known) for i, row in rows.items()}


def bare_image(row: Row[Any], **extra: Any) -> LegacyImage:
    return _bare(row, **extra)


def image_query() -> Any:
    return _query()
