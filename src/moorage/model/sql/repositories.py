"""Namespaces and repositories."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import IntegrityError

from moorage.db import tables as t
from moorage.domain.errors import DataModelError
from moorage.domain.names import validate_namespace_name, validate_repository_name
from moorage.domain.records import (
    Namespace,
    NamespaceKind,
    RepositoryKind,
    RepositoryReference,
    RepositoryState,
    Visibility,
)
from moorage.model.sql.base import (
    SqlModelBase,
    ignoring_conflict,
    insert_ignoring_conflict,
    new_uuid,
    repository_from_row,
    repository_query,
)

# Built once: the hottest lookup of all (every request names a repository).
_REPOSITORY_BY_NAME = repository_query().where(
    t.namespace.c.name == bindparam("namespace"), t.repository.c.name == bindparam("name")
)
_NAMESPACE_BY_NAME = select(t.namespace).where(t.namespace.c.name == bindparam("name"))
_NAMESPACE_ID = select(t.namespace.c.id).where(t.namespace.c.name == bindparam("name"))
_REPOSITORY_ID = select(t.repository.c.id).where(
    t.repository.c.namespace_id == bindparam("namespace_id"),
    t.repository.c.name == bindparam("name"),
)


class RepositoryMixin(SqlModelBase):
    def create_namespace(
        self,
        name: str,
        kind: NamespaceKind = NamespaceKind.USER,
        *,
        email: str | None = None,
        removed_tag_expiration_s: int | None = None,
    ) -> Namespace:
        validate_namespace_name(name)
        window = (
            self.default_removed_tag_expiration_s
            if removed_tag_expiration_s is None
            else removed_tag_expiration_s
        )
        if window < 0:
            raise DataModelError("the time-machine window cannot be negative")
        values = {
            "uuid": new_uuid(),
            "name": name,
            "kind": kind.value,
            "email": email,
            "enabled": True,
            "removed_tag_expiration_s": window,
            "created": datetime.now(UTC),
        }
        # Insert-or-nothing on the name: of any number of racing creators one inserts and
        # the others learn it exists, with no unique-key error (and on PostgreSQL no
        # aborted transaction) on the way.
        try:
            with self.database.write() as conn:
                created = insert_ignoring_conflict(conn, t.namespace, values, ["name"])
        except IntegrityError:  # not the name: the e-mail address is another namespace's
            raise DataModelError(f"e-mail address {email!r} is already in use") from None
        if not created:
            raise DataModelError(f"namespace {name!r} already exists")
        found = self.get_namespace(name)
        assert found is not None
        return found

    def get_namespace(self, name: str) -> Namespace | None:
        # Asked by every push into a new repository and every read of a missing one.
        row = self.database.first(_NAMESPACE_BY_NAME, {"name": name})
        if row is None:
            return None
        return Namespace(
            id=row.id,
            uuid=row.uuid,
            name=row.name,
            kind=NamespaceKind(row.kind),
            enabled=bool(row.enabled),
            removed_tag_expiration_s=row.removed_tag_expiration_s,
            email=row.email,
        )

    def set_namespace_enabled(self, name: str, enabled: bool) -> bool:
        with self.database.write() as conn:
            result = conn.execute(
                update(t.namespace).where(t.namespace.c.name == name).values(enabled=enabled)
            )
        return result.rowcount == 1

    def is_namespace_enabled(self, namespace_name: str) -> bool:
        namespace = self.get_namespace(namespace_name)
        return namespace is not None and namespace.enabled

    def create_repository(
        self,
        namespace_name: str,
        repo_name: str,
        *,
        visibility: Visibility = Visibility.PRIVATE,
        kind: RepositoryKind = RepositoryKind.IMAGE,
    ) -> RepositoryReference | None:
        """Creates the repository; returns the existing one if it is already there, None
        if the namespace does not exist."""
        validate_repository_name(repo_name)
        with self.database.write() as conn:
            namespace_id = conn.execute(_NAMESPACE_ID, {"name": namespace_name}).scalar()
            if namespace_id is None:
                return None
            key = {"namespace_id": namespace_id, "name": repo_name}
            # Insert-or-get, not check-then-insert: racing first pushes (any number of
            # threads or workers) all get the one row. On PostgreSQL a racing insert waits
            # for the winner's commit, then does nothing; the select after it sees the row.
            repository_id = conn.execute(
                ignoring_conflict(conn, t.repository, ["namespace_id", "name"], ["id"]),
                {
                    **key,
                    "visibility": visibility.value,
                    "kind": kind.value,
                    "state": RepositoryState.NORMAL.value,
                    "created": datetime.now(UTC),
                },
            ).scalar()
            if repository_id is None:
                repository_id = conn.execute(_REPOSITORY_ID, key).scalar_one()
            return self.repository_ref(conn, int(repository_id))

    def set_repository_state(
        self, repository_ref: RepositoryReference, state: RepositoryState
    ) -> None:
        with self.database.write() as conn:
            conn.execute(
                update(t.repository)
                .where(t.repository.c.id == repository_ref.id)
                .values(state=state.value)
            )

    def lookup_repository(
        self, namespace_name: str, repo_name: str, kind_filter: RepositoryKind | None = None
    ) -> RepositoryReference | None:
        row = self.database.first(
            _REPOSITORY_BY_NAME, {"namespace": namespace_name, "name": repo_name}
        )
        if row is None or (kind_filter is not None and row.kind != RepositoryKind(kind_filter)):
            return None
        return repository_from_row(row)
