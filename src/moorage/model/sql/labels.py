"""Manifest labels, and the ``quay.expires-after`` handler."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, bindparam, delete, exists, func, or_, select, update

from moorage.db import tables as t
from moorage.domain.errors import ImmutableLabelError
from moorage.domain.labels import (
    EXPIRES_AFTER_KEY,
    LabelSourceType,
    parse_expires_after,
    parse_source_type,
    resolve_media_type,
    validate_label,
)
from moorage.domain.records import Label, Manifest
from moorage.model.sql.base import SqlModelBase, new_uuid


def _label(row: Any) -> Label:
    return Label(
        id=row.id,
        uuid=row.uuid,
        key=row.key,
        value=row.value,
        source_type_name=row.source_type,
        media_type_name=row.media_type,
    )


_INSERT_LABELS = t.label.insert().returning(t.label.c.id, sort_by_parameter_order=True)
_LINK_LABELS = t.manifest_label.insert()
_HAS_SOURCE_LABEL = select(
    exists().where(
        t.manifest_label.c.manifest_id == bindparam("manifest_id"),
        t.label.c.id == t.manifest_label.c.label_id,
        t.label.c.source_type == bindparam("source_type"),
    )
)


def _labels_of(manifest_id: int) -> Any:
    return (
        select(t.label)
        .join(t.manifest_label, t.manifest_label.c.label_id == t.label.c.id)
        .where(t.manifest_label.c.manifest_id == manifest_id)
    )


class LabelMixin(SqlModelBase):
    def create_manifest_label(
        self,
        manifest: Manifest,
        key: str,
        value: str,
        source_type_name: str,
        media_type_name: str | None = None,
    ) -> Label | None:
        source = parse_source_type(source_type_name)
        validate_label(key, value, source)
        media_type = resolve_media_type(value, media_type_name)
        with self.database.write() as conn:
            repository_id = conn.execute(
                select(t.manifest.c.repository_id).where(t.manifest.c.id == manifest.id)
            ).scalar()
            if repository_id is None:
                return None
            label_id = conn.execute(
                t.label.insert().values(
                    uuid=new_uuid(),
                    key=key,
                    value=value,
                    media_type=media_type,
                    source_type=source.value,
                )
            ).inserted_primary_key[0]  # type: ignore[index]
            conn.execute(
                t.manifest_label.insert().values(
                    repository_id=repository_id, manifest_id=manifest.id, label_id=label_id
                )
            )
            if key == EXPIRES_AFTER_KEY:
                self._apply_expires_after(conn, repository_id, manifest.id, value)
            row = conn.execute(select(t.label).where(t.label.c.id == label_id)).one()
        return _label(row)

    def add_config_labels(
        self,
        conn: Connection,
        repository_id: int,
        manifest_id: int,
        labels: Mapping[str, str],
    ) -> bool:
        """The labels of the manifest's config, in the caller's transaction, a statement
        per kind of row; the expiry label applies to the manifest's alive tags. Nothing is
        added when the manifest has config labels already (a push again, or the retry of
        one): True when these were added. Every label is validated first."""
        for key, value in labels.items():
            validate_label(key, value, LabelSourceType.MANIFEST)
        if not labels:
            return False
        params = {"manifest_id": manifest_id, "source_type": LabelSourceType.MANIFEST.value}
        if conn.execute(_HAS_SOURCE_LABEL, params).scalar():
            return False
        rows = [
            {
                "uuid": new_uuid(),
                "key": key,
                "value": value,
                "media_type": resolve_media_type(value, None),
                "source_type": LabelSourceType.MANIFEST.value,
            }
            for key, value in labels.items()
        ]
        ids = [int(row.id) for row in conn.execute(_INSERT_LABELS, rows)]
        link = {"repository_id": repository_id, "manifest_id": manifest_id}
        conn.execute(_LINK_LABELS, [{**link, "label_id": label_id} for label_id in ids])
        if EXPIRES_AFTER_KEY in labels:
            self._apply_expires_after(conn, repository_id, manifest_id, labels[EXPIRES_AFTER_KEY])
        return True

    def _apply_expires_after(
        self, conn: Connection, repository_id: int, manifest_id: int, value: str
    ) -> None:
        """Every alive tag on the manifest ends at its lifetime start plus the duration
        (OCI-era Quay: not clamped). Unparsable or non-positive values do nothing."""
        seconds = parse_expires_after(value)
        if seconds is None:
            return
        self.lock_repository(conn, repository_id)
        now_ms = self.now_ms()
        conn.execute(
            update(t.tag)
            .where(
                t.tag.c.manifest_id == manifest_id,
                t.tag.c.hidden.is_(False),
                or_(t.tag.c.lifetime_end_ms.is_(None), t.tag.c.lifetime_end_ms > now_ms),
            )
            .values(lifetime_end_ms=t.tag.c.lifetime_start_ms + seconds * 1000)
        )

    def list_manifest_labels(
        self, manifest: Manifest, key_prefix: str | None = None
    ) -> list[Label]:
        query = _labels_of(manifest.id).order_by(t.label.c.id)
        if key_prefix:
            # Case-insensitive, and '%'/'_' in the prefix are literal characters.
            query = query.where(
                func.lower(t.label.c.key).startswith(key_prefix.lower(), autoescape=True)
            )
        with self.database.read() as conn:
            return [_label(row) for row in conn.execute(query)]

    def get_manifest_label(self, manifest: Manifest, label_uuid: str) -> Label | None:
        with self.database.read() as conn:
            row = conn.execute(_labels_of(manifest.id).where(t.label.c.uuid == label_uuid)).first()
        return None if row is None else _label(row)

    def delete_manifest_label(self, manifest: Manifest, label_uuid: str) -> Label | None:
        """Handler effects (an expiry already applied) stay when the label goes."""
        with self.database.write() as conn:
            row = conn.execute(_labels_of(manifest.id).where(t.label.c.uuid == label_uuid)).first()
            if row is None:
                return None
            if not LabelSourceType(row.source_type).mutable:
                raise ImmutableLabelError(
                    f"label {label_uuid} comes from the {row.source_type} and cannot be deleted"
                )
            conn.execute(delete(t.manifest_label).where(t.manifest_label.c.label_id == row.id))
            conn.execute(delete(t.label).where(t.label.c.id == row.id))
        return _label(row)
