"""Name listings for the V2 API: tags and repositories in byte-wise order, paged by name."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from moorage.db import tables as t
from moorage.domain.records import RepositoryReference
from moorage.model.sql.base import SqlModelBase, alive_clause


def _bytewise(conn: Connection, column: Any) -> Any:
    """Order by code point whatever the database's default collation is."""
    return column.collate("C") if conn.dialect.name == "postgresql" else column.collate("BINARY")


class ListingMixin(SqlModelBase):
    def list_tag_names(
        self,
        repository_ref: RepositoryReference,
        after: str | None = None,
        limit: int | None = None,
    ) -> list[str]:
        """Names of alive tags, byte-wise ascending, strictly after ``after``."""
        with self.database.read() as conn:
            name = _bytewise(conn, t.tag.c.name)
            query = (
                select(t.tag.c.name)  # one alive version per name: no DISTINCT needed
                .where(t.tag.c.repository_id == repository_ref.id, alive_clause(self.now_ms()))
                .order_by(name)
            )
            if after is not None:
                query = query.where(name > after)
            if limit is not None:
                query = query.limit(limit)
            return [str(value) for value in conn.execute(query).scalars()]

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
                .where(t.namespace.c.enabled.is_(True), t.repository.c.kind == "image")
                .order_by(ordered)
            )
            if public_only:
                query = query.where(t.repository.c.visibility == "public")
            if after is not None:
                query = query.where(ordered > after)
            if limit is not None:
                query = query.limit(limit)
            return [str(value) for value in conn.execute(query).scalars()]
