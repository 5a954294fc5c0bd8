"""Namespaces and repositories."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import bindparam, case, func, or_, select, update
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
    RepositorySummary,
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

    def repository_summary(self, repository_ref: RepositoryReference) -> RepositorySummary:
        return self.describe_repositories([repository_ref.full_name])[0][1]

    def describe_repositories(
        self, full_names: Sequence[str]
    ) -> list[tuple[RepositoryReference, RepositorySummary]]:
        """Four queries for the whole page, whatever its length."""
        if not full_names:
            return []
        tag, manifest = t.tag, t.manifest
        full_name = t.namespace.c.name + "/" + t.repository.c.name
        now_ms = self.now_ms()
        with self.database.read() as conn:
            rows = conn.execute(repository_query().where(full_name.in_(list(full_names)))).all()
            found = {f"{r.namespace_name}/{r.name}": repository_from_row(r) for r in rows}
            ids = [repository.id for repository in found.values()]
            alive = (
                tag.c.repository_id.in_(ids),
                tag.c.hidden.is_(False),
                or_(tag.c.lifetime_end_ms.is_(None), tag.c.lifetime_end_ms > now_ms),
            )
            counts: dict[int, int] = dict(
                conn.execute(
                    select(tag.c.repository_id, func.count())
                    .where(*alive)
                    .group_by(tag.c.repository_id)
                ).all()
            )
            tagged = (
                select(tag.c.repository_id, tag.c.manifest_id).where(*alive).distinct().subquery()
            )
            sizes: dict[int, int | None] = dict(
                conn.execute(
                    select(tagged.c.repository_id, func.sum(manifest.c.layers_compressed_size))
                    .join(manifest, manifest.c.id == tagged.c.manifest_id)
                    .group_by(tagged.c.repository_id)
                ).all()
            )
            ended = func.max(
                case((tag.c.lifetime_end_ms <= now_ms, tag.c.lifetime_end_ms), else_=None)
            )
            changes = {
                row[0]: row[1:]
                for row in conn.execute(
                    select(tag.c.repository_id, func.max(tag.c.lifetime_start_ms), ended)
                    .where(tag.c.repository_id.in_(ids), tag.c.hidden.is_(False))
                    .group_by(tag.c.repository_id)
                ).all()
            }
        described = []
        for name in full_names:
            repository = found.get(name)
            if repository is None:
                continue
            moments = [m for m in changes.get(repository.id, ()) if m is not None]
            summary = RepositorySummary(
                int(counts.get(repository.id, 0)),
                int(sizes.get(repository.id) or 0),
                max(moments) if moments else None,
            )
            described.append((repository, summary))
        return described

    def mark_repository_deleted(self, repository_ref: RepositoryReference) -> bool:
        with self.database.write() as conn:
            if not self.lock_repository(conn, repository_ref.id):
                return False
            now_ms = self.now_ms()
            conn.execute(
                update(t.tag)
                .where(
                    t.tag.c.repository_id == repository_ref.id,
                    or_(t.tag.c.lifetime_end_ms.is_(None), t.tag.c.lifetime_end_ms > now_ms),
                )
                .values(lifetime_end_ms=now_ms)
            )
            conn.execute(
                update(t.manifest)
                .where(
                    t.manifest.c.repository_id == repository_ref.id,
                    t.manifest.c.deleted_at_ms.is_(None),
                )
                .values(deleted_at_ms=now_ms)
            )
            # A name no user can pick (repository names are lower case), unique anyway.
            tombstone = f"{repository_ref.name[:200]}+deleted-{secrets.token_hex(8)}"
            result = conn.execute(
                update(t.repository)
                .where(
                    t.repository.c.id == repository_ref.id,
                    t.repository.c.state != RepositoryState.MARKED_FOR_DELETION.value,
                )
                .values(name=tombstone, state=RepositoryState.MARKED_FOR_DELETION.value)
            )
            return bool(result.rowcount)
