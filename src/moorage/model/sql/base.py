"""Shared plumbing of the SQL model: clock, locations, row locks, record conversion."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, Row, Table, and_, bindparam, or_, select
from sqlalchemy.sql.elements import ColumnElement

from moorage.db import tables as t
from moorage.db.engine import Database, Executor
from moorage.domain.errors import UnknownLocationError
from moorage.domain.records import (
    Blob,
    NamespaceKind,
    RepositoryKind,
    RepositoryReference,
    RepositoryState,
    Tag,
    Visibility,
)

Clock = Callable[[], int]
DEFAULT_REMOVED_TAG_EXPIRATION_S = 1_209_600  # two weeks


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


def new_uuid() -> str:
    return str(uuid.uuid4())


def alive_clause(now_ms: int) -> ColumnElement[bool]:
    """Visible and alive: no end, or an end strictly after now."""
    return and_(
        t.tag.c.hidden.is_(False),
        or_(t.tag.c.lifetime_end_ms.is_(None), t.tag.c.lifetime_end_ms > now_ms),
    )


_IGNORING: dict[tuple[str, str, tuple[str, ...], tuple[str, ...]], Any] = {}


def ignoring_conflict(
    conn: Executor,
    table: Table,
    conflict_columns: Sequence[str],
    returning: Sequence[str] = (),
) -> Any:
    """``INSERT ... ON CONFLICT (columns) DO NOTHING [RETURNING ...]`` for the connection's
    backend, values passed at execution. Built once per backend and kept: building a
    dialect insert costs more than running it on SQLite. With ``returning``, a row comes
    back only when this statement inserted one."""
    key = (conn.dialect.name, table.name, tuple(conflict_columns), tuple(returning))
    statement = _IGNORING.get(key)
    if statement is None:
        # Only the engine's own dialect is imported (the engine loaded it already):
        # PostgreSQL's would add ~2 MB to every SQLite server process.
        if key[0] == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as postgresql_insert

            statement = postgresql_insert(table).on_conflict_do_nothing(
                index_elements=list(conflict_columns)
            )
        else:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            statement = sqlite_insert(table).on_conflict_do_nothing(
                index_elements=list(conflict_columns)
            )
        if returning:
            statement = statement.returning(*(table.c[name] for name in returning))
        _IGNORING[key] = statement
    return statement


def insert_ignoring_conflict(
    conn: Executor, table: Table, values: dict[str, Any], conflict_columns: Sequence[str]
) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING on either backend (first writer wins); True when
    this call inserted the row. Told by the row its RETURNING gives back: through a
    SQLAlchemy connection on PostgreSQL the row count of such an insert is -1."""
    returning = [column.name for column in table.primary_key.columns]
    statement = ignoring_conflict(conn, table, conflict_columns, returning)
    return conn.execute(statement, values).first() is not None


class SqlModelBase:
    """State shared by the mixins: the database, the clock and the storage locations."""

    def __init__(
        self,
        database: Database,
        *,
        clock: Clock = wall_clock_ms,
        locations: Sequence[str] = ("local",),
        signer_kinds: Sequence[str] = ("gpg2",),
        default_removed_tag_expiration_s: int = DEFAULT_REMOVED_TAG_EXPIRATION_S,
    ) -> None:
        self.database = database
        self.now_ms = clock
        self.locations = tuple(locations)
        self.signer_kinds = frozenset(signer_kinds)
        self.default_removed_tag_expiration_s = default_removed_tag_expiration_s
        self._location_ids: dict[str, int] = {}

    # -- storage locations ---------------------------------------------------------------

    def location_id(self, conn: Executor, name: str) -> int:
        """Row id of a configured location, creating its row on first use."""
        cached = self._location_ids.get(name)
        if cached is not None:
            return cached
        if name not in self.locations:
            raise UnknownLocationError(f"unknown storage location: {name!r}")
        created = insert_ignoring_conflict(conn, t.storage_location, {"name": name}, ["name"])
        found = int(conn.execute(_LOCATION_BY_NAME, {"name": name}).scalar_one())
        if not created:  # a row this transaction made could still roll back: cache it later
            self._location_ids[name] = found
        return found

    # -- locks -------------------------------------------------------------------------

    def lock_repository(self, conn: Connection, repository_id: int) -> bool:
        """Serialize tag writers of one repository (PostgreSQL row lock; SQLite's write
        transactions are already exclusive). False if the repository is gone."""
        query = _LOCK_REPOSITORY if conn.dialect.name == "postgresql" else _REPOSITORY_ID
        return conn.execute(query, {"repository_id": repository_id}).first() is not None

    # -- reading records ---------------------------------------------------------------

    def repository_ref(self, conn: Connection, repository_id: int) -> RepositoryReference | None:
        row = conn.execute(_REPOSITORY_BY_ID, {"repository_id": repository_id}).first()
        return None if row is None else repository_from_row(row)

    def blob_record(self, conn: Executor, row: Any, include_placements: bool) -> Blob:
        if not include_placements:
            return blob_from_row(row)
        names = conn.execute(_PLACEMENTS_OF_ONE, {"blob_id": row.id})
        return blob_from_row(row, tuple(str(name) for (name,) in names))


def repository_query() -> Any:
    return select(
        t.repository.c.id,
        t.repository.c.name,
        t.repository.c.kind,
        t.repository.c.visibility,
        t.repository.c.state,
        t.repository.c.trust_enabled,
        t.namespace.c.name.label("namespace_name"),
        t.namespace.c.billing_id,
        t.namespace.c.enabled.label("namespace_enabled"),
    ).join(t.namespace, t.namespace.c.id == t.repository.c.namespace_id)


# Built once with bind parameters (building a statement costs more than running it).
_REPOSITORY_BY_ID = repository_query().where(t.repository.c.id == bindparam("repository_id"))
_REPOSITORY_ID = select(t.repository.c.id).where(t.repository.c.id == bindparam("repository_id"))
_LOCK_REPOSITORY = _REPOSITORY_ID.with_for_update(key_share=True)
_LOCATION_BY_NAME = select(t.storage_location.c.id).where(
    t.storage_location.c.name == bindparam("name")
)
_PLACEMENTS_OF_ONE = (  # no IN list: it also runs in fast transactions
    select(t.storage_location.c.name)
    .join(t.blob_placement)
    .where(t.blob_placement.c.blob_id == bindparam("blob_id"))
    .order_by(t.storage_location.c.name)
)


def repository_from_row(row: Row[Any]) -> RepositoryReference:
    return RepositoryReference(
        id=row.id,
        namespace_name=row.namespace_name,
        name=row.name,
        kind=RepositoryKind(row.kind),
        is_public=row.visibility == Visibility.PUBLIC.value,
        is_free_namespace=row.billing_id is None,
        state=RepositoryState(row.state),
        trust_enabled=bool(row.trust_enabled),
        namespace_enabled=bool(row.namespace_enabled),
    )


def blob_from_row(row: Row[Any], placements: tuple[str, ...] | None = None) -> Blob:
    extra: dict[str, Any] = {} if placements is None else {"_placements": placements}
    return Blob(
        id=row.id,
        uuid=row.uuid,
        digest=row.digest,
        compressed_size=row.compressed_size,
        uncompressed_size=row.uncompressed_size,
        uploading=bool(row.uploading),
        content_addressed=bool(row.content_addressed),
        **extra,
    )


def tag_query() -> Any:
    return select(t.tag, t.manifest.c.digest.label("manifest_digest")).outerjoin(
        t.manifest, t.manifest.c.id == t.tag.c.manifest_id
    )


def tag_from_row(row: Row[Any], repository: RepositoryReference, **extra: Any) -> Tag:
    return Tag(
        id=row.id,
        name=row.name,
        repository=repository,
        reversion=bool(row.reversion),
        lifetime_start_ms=row.lifetime_start_ms,
        lifetime_end_ms=row.lifetime_end_ms,
        manifest_id=row.manifest_id,
        manifest_digest=row.manifest_digest,
        legacy_image_id=row.legacy_image_id,
        **extra,
    )


NAMESPACE_KINDS = tuple(k.value for k in NamespaceKind)
