"""Name listings for the V2 API: tags and repositories in byte-wise order, paged by name."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, bindparam, case, select

from moorage.db import tables as t
from moorage.domain.records import RepositoryReference, RepositoryState
from moorage.model.sql.base import SqlModelBase


def _bytewise(conn: Connection, column: Any) -> Any:
    """Order by code point whatever the database's default collation is."""
    return column.collate("C") if conn.dialect.name == "postgresql" else column.collate("BINARY")


def _tag_names_statement(postgres: bool) -> Any:
    """Built once per dialect (the collation differs): tag listing is a hot path."""
    name = t.tag.c.name.collate("C" if postgres else "BINARY")
    limit: Any = bindparam("limit")
    return (
        select(t.tag.c.name)  # one alive version per name: no DISTINCT needed
        .where(
            t.tag.c.repository_id == bindparam("repository_id"),
            t.tag.c.hidden.is_(False),
            (t.tag.c.lifetime_end_ms.is_(None)) | (t.tag.c.lifetime_end_ms > bindparam("now_ms")),
            name > bindparam("after"),
        )
        .order_by(name)
        # No limit is -1 on SQLite; PostgreSQL takes NULL for "all".
        .limit(case((limit < 0, None), else_=limit) if postgres else limit)
    )


_TAG_NAMES = {False: _tag_names_statement(False), True: _tag_names_statement(True)}


class ListingMixin(SqlModelBase):
    def list_tag_names(
        self,
        repository_ref: RepositoryReference,
        after: str | None = None,
        limit: int | None = None,
    ) -> list[str]:
        """Names of alive tags, byte-wise ascending, strictly after ``after``."""
        params = {
            "repository_id": repository_ref.id,
            "now_ms": self.now_ms(),
            "after": after or "",
            "limit": -1 if limit is None else limit,
        }
        statement = _TAG_NAMES[not self.database.is_sqlite]
        return [str(row.name) for row in self.database.all(statement, params)]

    def list_repository_names(
        self, after: str | None = None, limit: int | None = None, *, public_only: bool = False
    ) -> list[str]:
        """``namespace/name`` of image repositories in enabled namespaces, byte-wise
        ascending, strictly after ``after``."""
        full_name = t.namespace.c.name + "/" + t.repository.c.name
        with self.database.read() as conn:
            ordered = _bytewise(conn, full_name)
            query = (
                select(full_name.label("full_name"))
                .join(t.namespace, t.namespace.c.id == t.repository.c.namespace_id)
                .where(
                    t.namespace.c.enabled.is_(True),
                    t.repository.c.kind == "image",
                    t.repository.c.state != RepositoryState.MARKED_FOR_DELETION.value,
                )
                .order_by(ordered)
            )
            if public_only:
                query = query.where(t.repository.c.visibility == "public")
            if after is not None:
                query = query.where(ordered > after)
            if limit is not None:
                query = query.limit(limit)
            return [str(value) for value in conn.execute(query).scalars()]
