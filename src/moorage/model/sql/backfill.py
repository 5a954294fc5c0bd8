"""A tag's manifest, and backfilling one for tags that only have a V1 image chain."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, bindparam, select, update
from sqlalchemy.exc import IntegrityError

from moorage.db import tables as t
from moorage.domain.manifests import Schema1Signer, V1Entry, build_schema1_manifest, parse_manifest
from moorage.domain.media_types import DOCKER_SCHEMA1_SIGNED_MANIFEST
from moorage.domain.records import LegacyImage, Manifest, RepositoryReference, Tag
from moorage.model.sql.base import insert_ignoring_conflict
from moorage.model.sql.manifest_rows import manifest_from_row, visible_blob
from moorage.model.sql.manifests import ManifestMixin

SIGNING_KEY_NAME = "schema1-signing-key"
MAX_BACKFILL_MANIFEST_BYTES = 3 * 1024 * 1024
_REDUCED_KEYS = ("id", "parent", "created", "author", "comment", "Size")


def _reduced(v1_json: str | None) -> str:
    """Non-leaf V1 JSON cut down to what clients need, for oversized manifests."""
    data = json.loads(v1_json or "{}")
    kept = {k: data[k] for k in _REDUCED_KEYS if k in data}
    cmd = (data.get("container_config") or {}).get("Cmd")
    if cmd is not None:
        kept["container_config"] = {"Cmd": cmd}
    return json.dumps(kept)


def _entries(chain: list[LegacyImage], reduce: bool) -> list[V1Entry]:
    entries = []
    for index, image in enumerate(chain):
        is_leaf = index == len(chain) - 1
        v1_json = image.v1_metadata_string or json.dumps({"id": image.docker_image_id})
        entries.append(
            V1Entry(
                id=image.docker_image_id,
                parent=chain[index - 1].docker_image_id if index else None,
                blob_digest=image.blob_digest or "",
                v1_json=v1_json if (is_leaf or not reduce) else _reduced(v1_json),
                created=image.created,
                comment=image.comment,
                command=image.command,
                author=None,
                throwaway=False,
                size=image.image_size,
            )
        )
    return entries


_TAGGED_MANIFEST = (
    select(t.manifest)
    .join(t.tag, t.tag.c.manifest_id == t.manifest.c.id)
    .where(
        t.tag.c.repository_id == bindparam("repository_id"),
        t.tag.c.name == bindparam("name"),
        t.tag.c.hidden.is_(False),
        (t.tag.c.lifetime_end_ms.is_(None)) | (t.tag.c.lifetime_end_ms > bindparam("now_ms")),
    )
)


class BackfillMixin(ManifestMixin):
    _signer: Schema1Signer | None = None

    def schema1_signer(self) -> Schema1Signer:
        """The registry's schema 1 signing key, kept in the database so that every
        worker signs with the same key; the first worker to need it creates it."""
        if self._signer is not None:
            return self._signer
        with self.database.write() as conn:
            pem = conn.execute(
                select(t.registry_secret.c.value).where(
                    t.registry_secret.c.name == SIGNING_KEY_NAME
                )
            ).scalar()
            if pem is None:
                insert_ignoring_conflict(
                    conn,
                    t.registry_secret,
                    {
                        "name": SIGNING_KEY_NAME,
                        "value": Schema1Signer.generate().to_pem(),
                        "created": datetime.now(UTC),
                    },
                    ["name"],
                )
                pem = conn.execute(
                    select(t.registry_secret.c.value).where(
                        t.registry_secret.c.name == SIGNING_KEY_NAME
                    )
                ).scalar_one()
        self._signer = Schema1Signer.from_pem(bytes(pem))
        return self._signer

    def lookup_tagged_manifest(
        self, repository_ref: RepositoryReference, tag_name: str
    ) -> Manifest | None:
        """The manifest of the alive tag ``tag_name``, in one query: None when there is no
        such tag or it has no manifest yet (a V1 tag before its backfill)."""
        params = {"repository_id": repository_ref.id, "name": tag_name, "now_ms": self.now_ms()}
        row = self.database.first(_TAGGED_MANIFEST, params)
        return None if row is None else manifest_from_row(row)

    def get_manifest_for_tag(
        self, tag: Tag, backfill_if_necessary: bool = False
    ) -> Manifest | None:
        with self.database.read() as conn:
            row = conn.execute(
                select(t.manifest)
                .join(t.tag, t.tag.c.manifest_id == t.manifest.c.id)
                .where(t.tag.c.id == tag.id)
            ).first()
        if row is not None:
            return manifest_from_row(row)
        return self.backfill_manifest_for_tag(tag) if backfill_if_necessary else None

    def backfill_manifest_for_tag(self, tag: Tag) -> Manifest | None:
        with self.database.read() as conn:
            row = conn.execute(select(t.tag).where(t.tag.c.id == tag.id)).first()
            if row is None or row.hidden:
                return None
            if row.manifest_id is not None:
                found = conn.execute(
                    select(t.manifest).where(t.manifest.c.id == row.manifest_id)
                ).one()
                return manifest_from_row(found)
            if row.legacy_image_id is None:
                return None
            leaf = self.leaf_image_with_parents(conn, row.legacy_image_id)
        if leaf is None:
            return None
        chain = [*reversed(leaf.parents), leaf]
        if any(image.uploading for image in chain):
            return None
        manifest_bytes = self._schema1_for(tag, chain)
        if manifest_bytes is None:
            return None
        try:
            return self._store_backfill(tag, leaf, manifest_bytes)
        except IntegrityError:
            return self.get_manifest_for_tag(tag)  # a concurrent backfill won

    def _schema1_for(self, tag: Tag, chain: list[LegacyImage]) -> bytes | None:
        name = tag.repository.full_name
        leaf_json = json.loads(chain[-1].v1_metadata_string or "{}")
        architecture = str(leaf_json.get("architecture") or "amd64")
        for reduce in (False, True):
            body = build_schema1_manifest(
                name, tag.name, architecture, _entries(chain, reduce), self.schema1_signer()
            )
            if len(body) <= MAX_BACKFILL_MANIFEST_BYTES:
                return body
        return None

    def _store_backfill(self, tag: Tag, leaf: LegacyImage, body: bytes) -> Manifest | None:
        parsed = parse_manifest(body, DOCKER_SCHEMA1_SIGNED_MANIFEST)
        repository_id = tag.repository.id
        with self.database.write() as conn:
            row = conn.execute(
                select(t.manifest).where(
                    t.manifest.c.repository_id == repository_id,
                    t.manifest.c.digest == parsed.digest,
                )
            ).first()
            if row is None:
                row = self._insert_backfilled(conn, repository_id, parsed.digest, body, leaf)
                if row is None:
                    return None
            result = conn.execute(
                update(t.tag)
                .where(t.tag.c.id == tag.id, t.tag.c.manifest_id.is_(None))
                .values(manifest_id=row.id)
            )
            if result.rowcount != 1:
                current = conn.execute(
                    select(t.manifest)
                    .join(t.tag, t.tag.c.manifest_id == t.manifest.c.id)
                    .where(t.tag.c.id == tag.id)
                ).first()
                return None if current is None else manifest_from_row(current)
            return manifest_from_row(row)

    def _insert_backfilled(
        self, conn: Connection, repository_id: int, digest: str, body: bytes, leaf: LegacyImage
    ) -> Any:
        now_ms = self.now_ms()
        chain = [*reversed(leaf.parents), leaf]
        blob_ids = []
        for image in chain:
            blob = visible_blob(conn, repository_id, image.blob_digest or "", now_ms)
            if blob is None:
                return None
            blob_ids.append(blob.id)
        manifest_id = conn.execute(
            t.manifest.insert().values(
                repository_id=repository_id,
                digest=digest,
                media_type=DOCKER_SCHEMA1_SIGNED_MANIFEST,
                manifest_bytes=body,
                layers_compressed_size=sum(image.image_size or 0 for image in chain),
                created=datetime.now(UTC),
            )
        ).inserted_primary_key[0]  # type: ignore[index]
        for blob_id in dict.fromkeys(blob_ids):
            conn.execute(
                t.manifest_blob.insert().values(
                    repository_id=repository_id, manifest_id=manifest_id, blob_id=blob_id
                )
            )
        conn.execute(
            t.manifest_legacy_image.insert().values(
                repository_id=repository_id, manifest_id=manifest_id, legacy_image_id=leaf.id
            )
        )
        return conn.execute(select(t.manifest).where(t.manifest.c.id == manifest_id)).one()
