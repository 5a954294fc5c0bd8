"""Derived images (verb outputs such as squashed tarballs) and their signatures."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, delete, select, update

from moorage.db import tables as t
from moorage.domain.errors import UnknownSignerError
from moorage.domain.manifests import parse_manifest
from moorage.domain.manifests.schema1 import STORED_MAX_SIGNATURES
from moorage.domain.records import DerivedImage, Manifest
from moorage.model.sql.base import SqlModelBase, insert_ignoring_conflict, new_uuid


def uniqueness_hash(varying_metadata: dict[str, Any] | None) -> str:
    """sha256 of the canonical JSON (keys sorted at every depth); no metadata → ""."""
    if not varying_metadata:
        return ""
    canonical = json.dumps(varying_metadata, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _unique_id(verb: str, derived_id: int) -> str:
    return hashlib.sha256(f"{verb}:{derived_id}".encode()).hexdigest()


class DerivedImageMixin(SqlModelBase):
    def _source_image_id(self, conn: Connection, manifest: Manifest) -> int | None:
        """The manifest's leaf legacy image; for a list, that of its linux/amd64 child."""
        manifest_id = manifest.id
        if manifest.is_manifest_list:
            parsed = parse_manifest(
                manifest.internal_manifest_bytes,
                manifest.media_type,
                max_signatures=STORED_MAX_SIGNATURES,
            )
            wanted = next(
                (
                    c.digest
                    for c in parsed.children
                    if (c.platform or {}).get("os") == "linux"
                    and (c.platform or {}).get("architecture") == "amd64"
                ),
                None,
            )
            if wanted is None:
                return None
            child = conn.execute(
                select(t.manifest.c.id).where(
                    t.manifest.c.repository_id == manifest.repository_id,
                    t.manifest.c.digest == wanted,
                )
            ).scalar()
            if child is None:
                return None
            manifest_id = child
        found = conn.execute(
            select(t.manifest_legacy_image.c.legacy_image_id).where(
                t.manifest_legacy_image.c.manifest_id == manifest_id
            )
        ).scalar()
        return None if found is None else int(found)

    def _derived(self, conn: Connection, row: Any, include_placements: bool) -> DerivedImage:
        blob_row = conn.execute(select(t.blob).where(t.blob.c.id == row.blob_id)).one()
        return DerivedImage(
            id=row.id,
            unique_id=_unique_id(row.verb, row.id),
            verb=row.verb,
            varying_metadata=row.varying_metadata or None,
            blob=self.blob_record(conn, blob_row, include_placements),
        )

    def _find_derived(self, conn: Connection, source_id: int, verb: str, key: str) -> Any:
        return conn.execute(
            select(t.derived_image).where(
                t.derived_image.c.source_legacy_image_id == source_id,
                t.derived_image.c.verb == verb,
                t.derived_image.c.uniqueness_hash == key,
            )
        ).first()

    def lookup_derived_image(
        self,
        manifest: Manifest,
        verb: str,
        varying_metadata: dict[str, Any] | None = None,
        include_placements: bool = False,
    ) -> DerivedImage | None:
        with self.database.read() as conn:
            source_id = self._source_image_id(conn, manifest)
            if source_id is None:
                return None
            row = self._find_derived(conn, source_id, verb, uniqueness_hash(varying_metadata))
            return None if row is None else self._derived(conn, row, include_placements)

    def lookup_or_create_derived_image(
        self,
        manifest: Manifest,
        verb: str,
        storage_location: str,
        varying_metadata: dict[str, Any] | None = None,
        include_placements: bool = False,
    ) -> DerivedImage | None:
        key = uniqueness_hash(varying_metadata)
        with self.database.write() as conn:
            source_id = self._source_image_id(conn, manifest)
            if source_id is None:
                return None
            row = self._find_derived(conn, source_id, verb, key)
            if row is None:
                row = self._create_derived(
                    conn, source_id, verb, key, varying_metadata, storage_location
                )
            return self._derived(conn, row, include_placements)

    def _create_derived(
        self,
        conn: Connection,
        source_id: int,
        verb: str,
        key: str,
        varying_metadata: dict[str, Any] | None,
        storage_location: str,
    ) -> Any:
        """The derived row with its storage row, or the one a racing creator made first
        (insert-or-get: on PostgreSQL the loser's insert waits for the winner's commit,
        then does nothing, and the storage row it made for itself is dropped again)."""
        blob_id = conn.execute(
            t.blob.insert().values(
                uuid=new_uuid(),
                digest=None,
                compressed_size=None,
                uploading=True,
                content_addressed=False,
                created=datetime.now(UTC),
            )
        ).inserted_primary_key[0]  # type: ignore[index]
        conn.execute(
            t.blob_placement.insert().values(
                blob_id=blob_id, storage_location_id=self.location_id(conn, storage_location)
            )
        )
        created = insert_ignoring_conflict(
            conn,
            t.derived_image,
            {
                "source_legacy_image_id": source_id,
                "blob_id": blob_id,
                "verb": verb,
                "uniqueness_hash": key,
                "varying_metadata": varying_metadata or None,
            },
            ["source_legacy_image_id", "verb", "uniqueness_hash"],
        )
        if not created:  # placements go with it (cascade)
            conn.execute(delete(t.blob).where(t.blob.c.id == blob_id))
        return self._find_derived(conn, source_id, verb, key)

    def get_derived_image_signature(
        self, derived_image: DerivedImage, signer_name: str
    ) -> str | None:
        with self.database.read() as conn:
            value = conn.execute(
                select(t.blob_signature.c.signature).where(
                    t.blob_signature.c.blob_id == derived_image.blob.id,
                    t.blob_signature.c.signer_name == signer_name,
                    t.blob_signature.c.uploading.is_(False),
                )
            ).scalar()
        return None if value is None else str(value)

    def set_derived_image_signature(
        self, derived_image: DerivedImage, signer_name: str, signature: str
    ) -> None:
        if signer_name not in self.signer_kinds:
            raise UnknownSignerError(f"unknown signer kind: {signer_name!r}")
        with self.database.write() as conn:
            insert_ignoring_conflict(
                conn,
                t.blob_signature,
                {
                    "blob_id": derived_image.blob.id,
                    "signer_name": signer_name,
                    "signature": signature,
                    "uploading": False,
                },
                ["blob_id", "signer_name"],
            )
            conn.execute(
                update(t.blob_signature)
                .where(
                    t.blob_signature.c.blob_id == derived_image.blob.id,
                    t.blob_signature.c.signer_name == signer_name,
                )
                .values(signature=signature, uploading=False)
            )

    def delete_derived_image(self, derived_image: DerivedImage) -> None:
        """Removes the derived row and its storage row with placements, signatures and
        torrent info (cascades). The bytes themselves are the storage layer's to delete."""
        with self.database.write() as conn:
            conn.execute(delete(t.derived_image).where(t.derived_image.c.id == derived_image.id))
            conn.execute(
                delete(t.blob).where(
                    t.blob.c.id == derived_image.blob.id, t.blob.c.content_addressed.is_(False)
                )
            )

    def set_derived_image_size(
        self, derived_image: DerivedImage, compressed_size: int
    ) -> DerivedImage | None:
        with self.database.write() as conn:
            conn.execute(
                update(t.blob)
                .where(t.blob.c.id == derived_image.blob.id)
                .values(compressed_size=compressed_size, uploading=False)
            )
            row = conn.execute(
                select(t.derived_image).where(t.derived_image.c.id == derived_image.id)
            ).first()
            return None if row is None else self._derived(conn, row, False)
