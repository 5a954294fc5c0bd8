"""Manifests: storing, looking up, listing layers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, bindparam, case, exists, or_, select, update
from sqlalchemy.exc import IntegrityError

from moorage.db import tables as t
from moorage.domain.errors import (
    BlobUnknownError,
    DataModelError,
    ManifestError,
    ManifestUnknownError,
)
from moorage.domain.labels import is_storable_text
from moorage.domain.manifests import UNKNOWN_SIZE, ParsedManifest, V1Entry, parse_manifest
from moorage.domain.records import (
    Manifest,
    RepositoryReference,
)
from moorage.model.sql.base import new_uuid
from moorage.model.sql.labels import LabelMixin
from moorage.model.sql.legacy import LegacyImageMixin
from moorage.model.sql.manifest_rows import IN_BATCH, manifest_from_row, visible_blobs
from moorage.model.sql.tags import alive_row, move_tag_locked

TEMP_TAG_PREFIX = "$temp-"
MAX_SIZE = 2**63 - 1  # sizes are signed 64-bit columns
# A push that loses a race (same manifest stored, or the same tag moved, by another
# transaction at once) is run again: the second run finds the winner's rows.
PUSH_ATTEMPTS = 3


def _reachable_statement() -> Any:
    """The manifest by digest, if not deleted and an alive tag (hidden temp tags included)
    points at it or at a list holding it: the common pulls, in one query. Built once with
    bind parameters."""
    now_ms: Any = bindparam("now_ms")
    alive = or_(t.tag.c.lifetime_end_ms.is_(None), t.tag.c.lifetime_end_ms > now_ms)
    parent_tag = t.tag.alias("parent_tag")
    parent_alive = or_(
        parent_tag.c.lifetime_end_ms.is_(None), parent_tag.c.lifetime_end_ms > now_ms
    )
    reachable = or_(
        exists().where(t.tag.c.manifest_id == t.manifest.c.id, alive),
        exists().where(
            t.manifest_child.c.child_manifest_id == t.manifest.c.id,
            parent_tag.c.manifest_id == t.manifest_child.c.manifest_id,
            parent_alive,
        ),
    )
    return select(t.manifest).where(
        t.manifest.c.repository_id == bindparam("repository_id"),
        t.manifest.c.digest == bindparam("digest"),
        t.manifest.c.deleted_at_ms.is_(None),
        reachable,
    )


def _held_reachable_statement() -> Any:
    """The manifest by digest, if not deleted and an alive tag points at something holding
    it: an index holding it at any depth or, for a referrer, its subject and what holds
    that (a referrer lives as long as its subject). Holders are walked up from the
    manifest (a recursive CTE over ``manifest_child`` and ``subject_digest``); a deleted
    manifest holds nothing. Asked only when ``_REACHABLE_MANIFEST`` finds no row: deep
    indexes, referrers, unknown digests. UNION (not UNION ALL) ends the walk on a repeat."""
    holders = (
        select(t.manifest.c.id, t.manifest.c.subject_digest)
        .where(
            t.manifest.c.repository_id == bindparam("repository_id"),
            t.manifest.c.digest == bindparam("digest"),
            t.manifest.c.deleted_at_ms.is_(None),
        )
        .cte("holders", recursive=True)
    )
    holder = t.manifest.alias("holder")
    link = t.manifest_child.alias("link")
    # One reference to the CTE, on the outer join's preserved side (PostgreSQL's rule).
    up = (
        select(holder.c.id, holder.c.subject_digest)
        .select_from(
            holders.outerjoin(link, link.c.child_manifest_id == holders.c.id).join(
                holder,
                or_(
                    holder.c.id == link.c.manifest_id,
                    (holder.c.repository_id == bindparam("repository_id"))
                    & (holder.c.digest == holders.c.subject_digest),
                ),
            )
        )
        .where(holder.c.deleted_at_ms.is_(None))
    )
    holders = holders.union(up)
    alive = or_(t.tag.c.lifetime_end_ms.is_(None), t.tag.c.lifetime_end_ms > bindparam("now_ms"))
    return select(t.manifest).where(
        t.manifest.c.repository_id == bindparam("repository_id"),
        t.manifest.c.digest == bindparam("digest"),
        t.manifest.c.deleted_at_ms.is_(None),
        exists().where(t.tag.c.manifest_id == holders.c.id, alive),
    )


_REACHABLE_MANIFEST = _reachable_statement()
_HELD_REACHABLE_MANIFEST = _held_reachable_statement()
# An index holding a child ends the child's own temp tags (Quay's
# reset_child_manifest_expiration): the child then lives exactly as long as what holds it.
_END_CHILD_TEMP_TAGS = (
    update(t.tag)
    .where(
        t.tag.c.repository_id == bindparam("in_repository"),
        t.tag.c.hidden.is_(True),
        t.tag.c.manifest_id.in_(
            select(t.manifest_child.c.child_manifest_id).where(
                t.manifest_child.c.manifest_id == bindparam("index_pk")
            )
        ),
        or_(t.tag.c.lifetime_end_ms.is_(None), t.tag.c.lifetime_end_ms > bindparam("end_at")),
    )
    .values(
        lifetime_end_ms=case(
            (t.tag.c.lifetime_start_ms > bindparam("end_at"), t.tag.c.lifetime_start_ms),
            else_=bindparam("end_at"),
        )
    )
)
_ANY_MANIFEST = select(t.manifest).where(
    t.manifest.c.repository_id == bindparam("repository_id"),
    t.manifest.c.digest == bindparam("digest"),
)
_MANIFEST_IDS = select(t.manifest.c.id, t.manifest.c.digest).where(
    t.manifest.c.repository_id == bindparam("repository_id"),
    t.manifest.c.digest.in_(bindparam("digests", expanding=True)),
)
_UNDELETE_MANIFEST = (
    update(t.manifest).where(t.manifest.c.id == bindparam("manifest_pk")).values(deleted_at_ms=None)
)
_INSERT_MANIFEST = t.manifest.insert().returning(*t.manifest.columns)
_LINK_BLOB = t.manifest_blob.insert()
_LINK_CHILD = t.manifest_child.insert()
_LINK_LEGACY_IMAGE = t.manifest_legacy_image.insert()
_INSERT_TAG = t.tag.insert()
_LEGACY_IMAGE_OF = select(t.manifest_legacy_image.c.legacy_image_id).where(
    t.manifest_legacy_image.c.manifest_id == bindparam("manifest_pk")
)


class ManifestMixin(LabelMixin, LegacyImageMixin):
    def manifest_record(self, conn: Connection, row: Any, include_legacy_image: bool) -> Manifest:
        if not include_legacy_image:
            return manifest_from_row(row)
        image_id = conn.execute(
            select(t.manifest_legacy_image.c.legacy_image_id).where(
                t.manifest_legacy_image.c.manifest_id == row.id
            )
        ).scalar()
        image = None if image_id is None else self.leaf_image_with_parents(conn, image_id)
        return manifest_from_row(row, _legacy_image=image)

    def lookup_manifest_by_digest(
        self,
        repository_ref: RepositoryReference,
        manifest_digest: str,
        allow_dead: bool = False,
        include_legacy_image: bool = False,
    ) -> Manifest | None:
        params = {"repository_id": repository_ref.id, "digest": manifest_digest}
        if allow_dead:
            if not include_legacy_image:
                row = self.database.first(_ANY_MANIFEST, params)
                return None if row is None else manifest_from_row(row)
            with self.database.read() as conn:
                row = conn.execute(_ANY_MANIFEST, params).first()
                return None if row is None else self.manifest_record(conn, row, True)
        params["now_ms"] = self.now_ms()
        if not include_legacy_image:  # the pull path: driver-level queries
            row = self.database.first(_REACHABLE_MANIFEST, params)
            if row is None:  # held deeper, a referrer, or not reachable
                row = self.database.first(_HELD_REACHABLE_MANIFEST, params)
            return None if row is None else manifest_from_row(row)
        with self.database.read() as conn:
            row = conn.execute(_REACHABLE_MANIFEST, params).first()
            if row is None:
                row = conn.execute(_HELD_REACHABLE_MANIFEST, params).first()
            return None if row is None else self.manifest_record(conn, row, True)

    def create_manifest(
        self,
        repository_ref: RepositoryReference,
        manifest_bytes: bytes,
        media_type: str,
        *,
        legacy_chain: Sequence[V1Entry] | None = None,
        temp_tag_expiration_s: int | None = None,
        digest_algorithm: str = "sha256",
        parsed: ParsedManifest | None = None,
        labels: Mapping[str, str] | None = None,
        tags: Sequence[str] = (),
    ) -> Manifest:
        """Stores a manifest with its blob links, children and legacy image chain, its
        config ``labels`` and each of ``tags`` moved onto it: all in one transaction, so
        a push that fails stores nothing and its retry stores everything.

        Every referenced blob must be visible in the repository (BlobUnknownError), with
        the size its descriptor gives (ManifestError; schema 1 sizes are not blob sizes),
        and every child of a list stored in it (ManifestUnknownError). A temp tag keeps an
        untagged manifest (e.g. a list child pushed by digest) alive for a while. The
        labels go onto a manifest that has no config labels yet (an existing one too: a
        retry completes what an older, interrupted push left out), and the expiry label
        ends the tags moved here. ``parsed``: the caller's own parse of these bytes, used
        instead of parsing them again when it matches them, the media type and the digest
        algorithm."""
        if (
            parsed is None
            or parsed.raw != manifest_bytes
            or parsed.media_type != media_type
            or not parsed.digest.startswith(f"{digest_algorithm}:")
        ):
            parsed = parse_manifest(manifest_bytes, media_type, digest_algorithm)
        if parsed.schema1 is not None:
            legacy_chain = parsed.schema1.entries
        for attempt in range(PUSH_ATTEMPTS):
            try:
                return self._create_manifest(
                    repository_ref,
                    parsed,
                    legacy_chain,
                    temp_tag_expiration_s,
                    dict(labels or {}),
                    tuple(dict.fromkeys(tags)),
                )
            except IntegrityError:
                # A concurrent push stored the same rows first; the next run finds them.
                if attempt == PUSH_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _create_manifest(
        self,
        repository_ref: RepositoryReference,
        parsed: ParsedManifest,
        legacy_chain: Sequence[V1Entry] | None,
        temp_tag_expiration_s: int | None,
        labels: dict[str, str],
        tags: tuple[str, ...],
    ) -> Manifest:
        with self.database.write() as conn:
            # Tag writers of the repository queue here (tags.py): taken first, before any
            # row of ours, so that two pushes never hold locks in opposite orders.
            if (tags or labels) and not self.lock_repository(conn, repository_ref.id):
                raise DataModelError(f"repository {repository_ref.full_name} is gone")
            now_ms = self.now_ms()
            params = {"repository_id": repository_ref.id, "digest": parsed.digest}
            row = conn.execute(_ANY_MANIFEST, params).first()
            if row is None:
                row = self._insert_manifest(conn, repository_ref.id, parsed, legacy_chain, now_ms)
            elif row.deleted_at_ms is not None:  # pushed again after a delete
                conn.execute(_UNDELETE_MANIFEST, {"manifest_pk": row.id})
            self.add_config_labels(conn, repository_ref.id, row.id, labels)
            if parsed.children:  # a retried push too: temp tags its children got since
                ends = {"in_repository": repository_ref.id, "index_pk": row.id, "end_at": now_ms}
                conn.execute(_END_CHILD_TEMP_TAGS, ends)
            if temp_tag_expiration_s is not None:
                self.add_temp_tag(conn, repository_ref.id, row.id, now_ms, temp_tag_expiration_s)
            if tags:
                image_id = conn.execute(_LEGACY_IMAGE_OF, {"manifest_pk": row.id}).scalar()
                target = (row.id, image_id, row.digest)
                for name in tags:
                    current = alive_row(conn, repository_ref.id, name, now_ms)
                    if move_tag_locked(conn, repository_ref, name, target, current, now_ms) is None:
                        raise DataModelError(f"tag {name} changed concurrently; try again")
            return manifest_from_row(row)

    def add_temp_tag(
        self, conn: Connection, repository_id: int, manifest_id: int, now_ms: int, seconds: int
    ) -> None:
        conn.execute(
            _INSERT_TAG,
            {
                "repository_id": repository_id,
                "name": TEMP_TAG_PREFIX + new_uuid(),
                "manifest_id": manifest_id,
                "lifetime_start_ms": now_ms,
                "lifetime_end_ms": now_ms + seconds * 1000,
                "hidden": True,
                "reversion": False,
            },
        )

    def _insert_manifest(
        self,
        conn: Connection,
        repository_id: int,
        parsed: ParsedManifest,
        legacy_chain: Sequence[V1Entry] | None,
        now_ms: int,
    ) -> Any:
        """The manifest row with its links and legacy chain; a query per kind of row, not
        per layer."""
        local = parsed.local_blob_digests
        blobs = visible_blobs(conn, repository_id, local, now_ms)
        for digest in local:
            if digest not in blobs:
                raise BlobUnknownError(digest)
        config_media_type = None if parsed.config is None else parsed.config.media_type
        _check_column_text("config 'mediaType'", config_media_type)
        _check_column_text("'artifactType'", parsed.artifact_type)
        if parsed.schema1 is None:
            _check_sizes(parsed, blobs)
        layers_size = sum(max(layer.size, 0) for layer in parsed.layers)
        if layers_size > MAX_SIZE:
            raise ManifestError(f"the layers add up to more than {MAX_SIZE} bytes")
        children: dict[str, int] = {}
        wanted = sorted({child.digest for child in parsed.children})
        for start in range(0, len(wanted), IN_BATCH):
            params = {"repository_id": repository_id, "digests": wanted[start : start + IN_BATCH]}
            children.update((row.digest, row.id) for row in conn.execute(_MANIFEST_IDS, params))
        for child in parsed.children:
            if child.digest not in children:
                raise ManifestUnknownError(child.digest)
        row = conn.execute(
            _INSERT_MANIFEST,
            {
                "repository_id": repository_id,
                "digest": parsed.digest,
                "media_type": parsed.media_type,
                "manifest_bytes": parsed.raw,
                "config_media_type": config_media_type,
                "artifact_type": parsed.artifact_type,
                "subject_digest": None if parsed.subject is None else parsed.subject.digest,
                "layers_compressed_size": layers_size,
                "created": datetime.now(UTC),
            },
        ).one()
        link = {"repository_id": repository_id, "manifest_id": row.id}
        blob_ids = dict.fromkeys(blobs[digest].id for digest in local)
        if blob_ids:
            conn.execute(_LINK_BLOB, [{**link, "blob_id": blob_id} for blob_id in blob_ids])
        child_ids = dict.fromkeys(children[child.digest] for child in parsed.children)
        if child_ids:
            conn.execute(
                _LINK_CHILD, [{**link, "child_manifest_id": child_id} for child_id in child_ids]
            )
        remote = {layer.digest for layer in parsed.layers if layer.is_remote}
        # A V1 chain cannot stand for foreign (remote) layers: such images get none.
        if legacy_chain and not any(entry.blob_digest in remote for entry in legacy_chain):
            leaf_id = self.create_chain(conn, repository_id, legacy_chain, now_ms, blobs=blobs)
            conn.execute(_LINK_LEGACY_IMAGE, {**link, "legacy_image_id": leaf_id})
        return row

    def delete_manifest(self, repository_ref: RepositoryReference, manifest: Manifest) -> bool:
        """Ends every alive tag on the manifest (hidden ones too) and marks it deleted: it
        is no longer pullable or listed as a referrer. Tag history keeps its versions; GC
        removes the rows later. False if the manifest is not in the repository (or already
        deleted)."""
        with self.database.write() as conn:
            self.lock_repository(conn, repository_ref.id)
            now_ms = self.now_ms()
            result = conn.execute(
                update(t.manifest)
                .where(
                    t.manifest.c.id == manifest.id,
                    t.manifest.c.repository_id == repository_ref.id,
                    t.manifest.c.deleted_at_ms.is_(None),
                )
                .values(deleted_at_ms=now_ms)
            )
            if result.rowcount != 1:
                return False
            conn.execute(
                update(t.tag)
                .where(
                    t.tag.c.manifest_id == manifest.id,
                    or_(t.tag.c.lifetime_end_ms.is_(None), t.tag.c.lifetime_end_ms > now_ms),
                )
                .values(
                    lifetime_end_ms=case(
                        (t.tag.c.lifetime_start_ms > now_ms, t.tag.c.lifetime_start_ms),
                        else_=now_ms,
                    )
                )
            )
        return True

    def list_referrers(
        self, repository_ref: RepositoryReference, subject_digest: str
    ) -> list[Manifest]:
        """Manifests of the repository whose ``subject`` is this digest, oldest first,
        whether or not they are tagged (a referrer lives as long as its subject)."""
        query = (
            select(t.manifest)
            .where(
                t.manifest.c.repository_id == repository_ref.id,
                t.manifest.c.subject_digest == subject_digest,
                t.manifest.c.deleted_at_ms.is_(None),
            )
            .order_by(t.manifest.c.id)
        )
        with self.database.read() as conn:
            return [manifest_from_row(row) for row in conn.execute(query)]


def _check_sizes(parsed: ParsedManifest, blobs: Mapping[str, Any]) -> None:
    """Each descriptor of a stored blob (config, layers; not foreign ones) gives its size:
    clients trust the size to fetch and check the bytes. The distribution-spec has no
    dedicated code for a manifest PUT: MANIFEST_INVALID (SIZE_INVALID is for uploads)."""
    named = [("config", parsed.config)] if parsed.config is not None else []
    named += [(f"layers[{index}]", layer) for index, layer in enumerate(parsed.layers)]
    for where, descriptor in named:
        if descriptor is None or descriptor.is_remote or descriptor.size == UNKNOWN_SIZE:
            continue
        stored = blobs[descriptor.digest].compressed_size
        if stored is not None and stored != descriptor.size:
            raise ManifestError(
                f"{where}: size {descriptor.size} does not match the stored blob"
                f" {descriptor.digest} ({stored} bytes)"
            )


def _check_column_text(what: str, value: str | None, width: int = 255) -> None:
    """A string the client chose, stored in a ``String(width)`` column: PostgreSQL refuses
    longer ones and NUL, and neither database stores a lone surrogate."""
    if value is None:
        return
    if len(value) > width or not is_storable_text(value):
        raise ManifestError(f"{what} must be text of at most {width} characters")
