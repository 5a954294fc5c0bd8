"""Tags: append-only versions with compare-and-set lifetimes.

Every change to a tag's lifetime is a compare-and-set against the state the caller read:
the write transaction locks the repository row (PostgreSQL; SQLite write transactions
are exclusive already), re-reads the alive version and gives up when it differs. Of two
simultaneous movers of one tag exactly one wins, and history never holds two alive
versions of one name.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Row, bindparam, func, select, update
from sqlalchemy.exc import IntegrityError

from moorage.db import tables as t
from moorage.domain.errors import DataModelError
from moorage.domain.labels import EXPIRES_AFTER_KEY, parse_expires_after
from moorage.domain.records import LegacyImage, Manifest, RepositoryReference, Tag
from moorage.model.sql.base import SqlModelBase, alive_clause, tag_from_row, tag_query
from moorage.model.sql.legacy_rows import load_images

EXPIRATION_MINIMUM_S = 3600
EXPIRATION_MAXIMUM_S = 104 * 7 * 86400

# The tag write path, built once with bind parameters (every manifest push moves a tag).
_ALIVE_ROW = select(t.tag.c.id, t.tag.c.lifetime_end_ms, t.tag.c.lifetime_start_ms).where(
    t.tag.c.repository_id == bindparam("repository_id"),
    t.tag.c.name == bindparam("name"),
    t.tag.c.hidden.is_(False),
    (t.tag.c.lifetime_end_ms.is_(None)) | (t.tag.c.lifetime_end_ms > bindparam("now_ms")),
)
_CLOSE_OPEN = (
    update(t.tag)
    .where(t.tag.c.id == bindparam("tag_pk"), t.tag.c.lifetime_end_ms.is_(None))
    .values(lifetime_end_ms=bindparam("end_ms"))
)
_CLOSE_ENDING = (
    update(t.tag)
    .where(t.tag.c.id == bindparam("tag_pk"), t.tag.c.lifetime_end_ms == bindparam("expected"))
    .values(lifetime_end_ms=bindparam("end_ms"))
)
_MANIFEST_TARGET = (
    select(t.manifest.c.id, t.manifest.c.digest, t.manifest_legacy_image.c.legacy_image_id)
    .outerjoin(t.manifest_legacy_image)
    .where(
        t.manifest.c.id == bindparam("target_pk"),
        t.manifest.c.repository_id == bindparam("repository_id"),
    )
)
_IMAGE_TARGET = select(t.legacy_image.c.id).where(
    t.legacy_image.c.id == bindparam("target_pk"),
    t.legacy_image.c.repository_id == bindparam("repository_id"),
)
_WINDOW_S = (
    select(t.namespace.c.removed_tag_expiration_s)
    .join(t.repository, t.repository.c.namespace_id == t.namespace.c.id)
    .where(t.repository.c.id == bindparam("repository_id"))
)
_EXPIRES_AFTER_VALUES = (
    select(t.label.c.value)
    .join(t.manifest_label, t.manifest_label.c.label_id == t.label.c.id)
    .where(
        t.manifest_label.c.manifest_id == bindparam("manifest_id"),
        t.label.c.key == EXPIRES_AFTER_KEY,
    )
    .order_by(t.label.c.id.desc())
)
_INSERT_TAG = t.tag.insert().returning(t.tag.c.id)
_REVIVE_MANIFEST = (
    update(t.manifest)
    .where(t.manifest.c.id == bindparam("manifest_pk"), t.manifest.c.deleted_at_ms.is_not(None))
    .values(deleted_at_ms=None)
)


def alive_row(conn: Connection, repository_id: int, name: str, now_ms: int) -> Any:
    """The alive visible version of a tag name, or None."""
    params = {"repository_id": repository_id, "name": name, "now_ms": now_ms}
    return conn.execute(_ALIVE_ROW, params).first()


def close_version(conn: Connection, tag_id: int, expected_end: int | None, now_ms: int) -> bool:
    """Compare-and-set the end of one version; False when it changed under us."""
    if expected_end is None:
        result = conn.execute(_CLOSE_OPEN, {"tag_pk": tag_id, "end_ms": now_ms})
    else:
        params = {"tag_pk": tag_id, "expected": expected_end, "end_ms": now_ms}
        result = conn.execute(_CLOSE_ENDING, params)
    return result.rowcount == 1


def expires_after_ms(conn: Connection, manifest_id: int | None) -> int | None:
    """The ``quay.expires-after`` of the manifest in milliseconds (its newest usable one)."""
    if manifest_id is None:
        return None
    values = conn.execute(_EXPIRES_AFTER_VALUES, {"manifest_id": manifest_id}).scalars()
    for value in values:
        seconds = parse_expires_after(value)
        if seconds is not None:
            return seconds * 1000
    return None


def move_tag_locked(
    conn: Connection,
    repository_ref: RepositoryReference,
    tag_name: str,
    target: tuple[int | None, int | None, str | None],
    current: Any,
    now_ms: int,
    is_reversion: bool = False,
) -> Tag | None:
    """Ends ``current`` (the alive version read in this transaction, or None) and starts a
    version on ``target`` (manifest id, legacy image id, manifest digest), ending after the
    manifest's ``quay.expires-after``. The caller holds the repository lock."""
    if current is not None:
        now_ms = max(now_ms, current.lifetime_start_ms)
        if not close_version(conn, current.id, current.lifetime_end_ms, now_ms):
            return None
    manifest_id, image_id, manifest_digest = target
    expires_after = expires_after_ms(conn, manifest_id)
    end_ms = None if expires_after is None else now_ms + expires_after
    tag_id = conn.execute(
        _INSERT_TAG,
        {
            "repository_id": repository_ref.id,
            "name": tag_name,
            "manifest_id": manifest_id,
            "legacy_image_id": image_id,
            "lifetime_start_ms": now_ms,
            "lifetime_end_ms": end_ms,
            "hidden": False,
            "reversion": is_reversion,
        },
    ).scalar_one()
    images = {} if image_id is None else load_images(conn, [image_id], True)
    # The record from the values just written: no read back.
    return Tag(
        id=int(tag_id),
        name=tag_name,
        repository=repository_ref,
        reversion=is_reversion,
        lifetime_start_ms=now_ms,
        lifetime_end_ms=end_ms,
        manifest_id=manifest_id,
        manifest_digest=manifest_digest,
        legacy_image_id=image_id,
        _legacy_image=None if image_id is None else images.get(image_id),
    )


class TagMixin(SqlModelBase):
    # -- reading -----------------------------------------------------------------------

    def _tags(
        self,
        conn: Connection,
        repository_ref: RepositoryReference,
        rows: Sequence[Row[Any]],
        include_legacy_image: bool,
    ) -> list[Tag]:
        if not include_legacy_image:
            return [tag_from_row(row, repository_ref) for row in rows]
        images = load_images(
            conn, [r.legacy_image_id for r in rows if r.legacy_image_id], include_parents=True
        )
        return [
            tag_from_row(row, repository_ref, _legacy_image=images.get(row.legacy_image_id))
            for row in rows
        ]

    def _alive_query(self, repository_ref: RepositoryReference, now_ms: int) -> Any:
        return tag_query().where(t.tag.c.repository_id == repository_ref.id, alive_clause(now_ms))

    def find_matching_tag(
        self, repository_ref: RepositoryReference, tag_names: Sequence[str]
    ) -> Tag | None:
        if not tag_names:
            raise ValueError("tag_names must not be empty")
        query = (
            self._alive_query(repository_ref, self.now_ms())
            .where(t.tag.c.name.in_(list(tag_names)))
            .order_by(t.tag.c.lifetime_start_ms.desc(), t.tag.c.id.desc())
            .limit(1)
        )
        with self.database.read() as conn:
            row = conn.execute(query).first()
        return None if row is None else tag_from_row(row, repository_ref)

    def get_most_recent_tag(self, repository_ref: RepositoryReference) -> Tag | None:
        query = (
            self._alive_query(repository_ref, self.now_ms())
            .order_by(t.tag.c.lifetime_start_ms.desc(), t.tag.c.id.desc())
            .limit(1)
        )
        with self.database.read() as conn:
            row = conn.execute(query).first()
        return None if row is None else tag_from_row(row, repository_ref)

    def list_repository_tags(
        self, repository_ref: RepositoryReference, include_legacy_images: bool = False
    ) -> list[Tag]:
        query = self._alive_query(repository_ref, self.now_ms()).order_by(t.tag.c.id)
        with self.database.read() as conn:
            rows = conn.execute(query).all()
            return self._tags(conn, repository_ref, rows, include_legacy_images)

    def _window_start_ms(self, conn: Connection, repository_id: int, now_ms: int) -> int:
        window_s = conn.execute(_WINDOW_S, {"repository_id": repository_id}).scalar()
        return now_ms - int(window_s or 0) * 1000

    def list_repository_tag_history(
        self,
        repository_ref: RepositoryReference,
        page: int = 1,
        size: int = 100,
        specific_tag_name: str | None = None,
        active_tags_only: bool = False,
    ) -> tuple[list[Tag], bool]:
        page, size = max(page, 1), max(size, 1)
        now_ms = self.now_ms()
        with self.database.read() as conn:
            window_start = self._window_start_ms(conn, repository_ref.id, now_ms)
            query = tag_query().where(
                t.tag.c.repository_id == repository_ref.id,
                t.tag.c.hidden.is_(False),
                # Versions that left the time-machine window are garbage, not history.
                (t.tag.c.lifetime_end_ms.is_(None)) | (t.tag.c.lifetime_end_ms >= window_start),
            )
            if specific_tag_name is not None:
                query = query.where(t.tag.c.name == specific_tag_name)
            if active_tags_only:
                query = query.where(alive_clause(now_ms))
            query = (
                query.order_by(t.tag.c.lifetime_start_ms.desc(), t.tag.c.name, t.tag.c.id.desc())
                .offset((page - 1) * size)
                .limit(size + 1)
            )
            rows = conn.execute(query).all()
            tags = self._tags(conn, repository_ref, rows[:size], include_legacy_image=True)
        return tags, len(rows) > size

    def get_repo_tag(
        self,
        repository_ref: RepositoryReference,
        tag_name: str,
        include_legacy_image: bool = False,
    ) -> Tag | None:
        query = self._alive_query(repository_ref, self.now_ms()).where(t.tag.c.name == tag_name)
        with self.database.read() as conn:
            row = conn.execute(query).first()
            if row is None:
                return None
            return self._tags(conn, repository_ref, [row], include_legacy_image)[0]

    def has_expired_tag(self, repository_ref: RepositoryReference, tag_name: str) -> bool:
        """True when the name has no alive version but a dead one in the time machine."""
        now_ms = self.now_ms()
        with self.database.read() as conn:
            if conn.execute(
                self._alive_query(repository_ref, now_ms).where(t.tag.c.name == tag_name)
            ).first():
                return False
            window_start = self._window_start_ms(conn, repository_ref.id, now_ms)
            dead = conn.execute(
                select(func.count()).where(
                    t.tag.c.repository_id == repository_ref.id,
                    t.tag.c.name == tag_name,
                    t.tag.c.hidden.is_(False),
                    t.tag.c.lifetime_end_ms >= window_start,
                )
            ).scalar_one()
        return bool(dead)

    # -- writing -------------------------------------------------------------------------

    def _resolve_target(
        self, conn: Connection, repository_id: int, target: Manifest | LegacyImage
    ) -> tuple[int | None, int | None, str | None] | None:
        """(manifest id, legacy image id, manifest digest) of a target that belongs to the
        repository."""
        params = {"target_pk": target.id, "repository_id": repository_id}
        if isinstance(target, Manifest):
            row = conn.execute(_MANIFEST_TARGET, params).first()
            return None if row is None else (row.id, row.legacy_image_id, row.digest)
        image_id = conn.execute(_IMAGE_TARGET, params).scalar()
        return None if image_id is None else (None, int(image_id), None)

    def _was_under_name(
        self,
        conn: Connection,
        repository_id: int,
        name: str,
        ids: tuple[int | None, int | None, str | None],
        window_start: int,
    ) -> bool:
        manifest_id, image_id, _ = ids
        column, value = (
            (t.tag.c.manifest_id, manifest_id)
            if manifest_id
            else (t.tag.c.legacy_image_id, image_id)
        )
        return (
            conn.execute(
                select(t.tag.c.id)
                .where(
                    t.tag.c.repository_id == repository_id,
                    t.tag.c.name == name,
                    column == value,
                    t.tag.c.hidden.is_(False),
                    (t.tag.c.lifetime_end_ms.is_(None)) | (t.tag.c.lifetime_end_ms >= window_start),
                )
                .limit(1)
            ).first()
            is not None
        )

    def retarget_tag(
        self,
        repository_ref: RepositoryReference,
        tag_name: str,
        manifest_or_legacy_image: Manifest | LegacyImage,
        is_reversion: bool = False,
    ) -> Tag | None:
        with self.database.read() as conn:
            seen = alive_row(conn, repository_ref.id, tag_name, self.now_ms())
        try:
            with self.database.write() as conn:
                if not self.lock_repository(conn, repository_ref.id):
                    return None
                now_ms = self.now_ms()
                target = self._resolve_target(conn, repository_ref.id, manifest_or_legacy_image)
                if target is None:
                    return None
                if is_reversion and not self._was_under_name(
                    conn,
                    repository_ref.id,
                    tag_name,
                    target,
                    self._window_start_ms(conn, repository_ref.id, now_ms),
                ):
                    return None
                current = alive_row(conn, repository_ref.id, tag_name, now_ms)
                if (current is None) != (seen is None) or (
                    current is not None and tuple(current) != tuple(seen)
                ):
                    return None  # someone else moved the tag since we looked
                if target[0] is not None:  # a tag onto a manifest deleted by digest revives it
                    conn.execute(_REVIVE_MANIFEST, {"manifest_pk": target[0]})
                return move_tag_locked(
                    conn, repository_ref, tag_name, target, current, now_ms, is_reversion
                )
        except IntegrityError:
            return None  # a concurrent creator of the same name won

    def delete_tag(self, repository_ref: RepositoryReference, tag_name: str) -> Tag:
        with self.database.read() as conn:
            seen = alive_row(conn, repository_ref.id, tag_name, self.now_ms())
        if seen is None:
            raise DataModelError(f"no alive tag named {tag_name!r}")
        with self.database.write() as conn:
            self.lock_repository(conn, repository_ref.id)
            now_ms = max(self.now_ms(), seen.lifetime_start_ms)
            if not close_version(conn, seen.id, seen.lifetime_end_ms, now_ms):
                raise DataModelError(f"tag {tag_name!r} changed concurrently")
            row = conn.execute(tag_query().where(t.tag.c.id == seen.id)).one()
            return tag_from_row(row, repository_ref)

    def change_repository_tag_expiration(
        self, tag: Tag, expiration_date: datetime | None
    ) -> tuple[int | None, bool]:
        """Quay's OCI model returned the previous end in milliseconds; the interface (and
        we) say seconds."""
        new_end: int | None = None
        if expiration_date is not None:
            if expiration_date.tzinfo is None:
                expiration_date = expiration_date.replace(tzinfo=UTC)
            offset_s = int(expiration_date.timestamp()) - tag.lifetime_start_ts
            offset_s = min(max(offset_s, EXPIRATION_MINIMUM_S), EXPIRATION_MAXIMUM_S)
            new_end = tag.lifetime_start_ms + offset_s * 1000
        try:
            with self.database.write() as conn:
                self.lock_repository(conn, tag.repository.id)
                current = conn.execute(
                    select(t.tag.c.lifetime_end_ms).where(t.tag.c.id == tag.id)
                ).first()
                if current is None:
                    return None, False
                if current.lifetime_end_ms == new_end:
                    return None, True
                if current.lifetime_end_ms != tag.lifetime_end_ms:
                    return None, False
                result = conn.execute(
                    update(t.tag)
                    .where(t.tag.c.id == tag.id, _end_is(tag.lifetime_end_ms))
                    .values(lifetime_end_ms=new_end)
                )
                if result.rowcount != 1:
                    return None, False
        except IntegrityError:
            return None, False  # reviving a dead version while another is alive
        previous = tag.lifetime_end_ms
        return (None if previous is None else previous // 1000), True


def _end_is(value: int | None) -> Any:
    return t.tag.c.lifetime_end_ms.is_(None) if value is None else t.tag.c.lifetime_end_ms == value
