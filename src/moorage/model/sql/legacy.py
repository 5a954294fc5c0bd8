"""Legacy V1 images: the per-repository image chain derived from manifests or V1 pushes."""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Integer, bindparam, func, literal, select, update

from moorage.db import tables as t
from moorage.domain.errors import BlobUnknownError, DataModelError
from moorage.domain.manifests import V1Entry
from moorage.domain.records import (
    LegacyImage,
    Manifest,
    RepositoryReference,
    SecurityScanStatus,
    Tag,
)
from moorage.model.sql.base import SqlModelBase, alive_clause, tag_from_row, tag_query
from moorage.model.sql.legacy_rows import (
    ancestor_ids,
    image_query,
    load_images,
    load_rows,
    rows_of_repository,
    with_parents,
)
from moorage.model.sql.manifest_rows import IN_BATCH, visible_blobs

LEGACY_CHAIN_LOCK_CLASS = 0x4C47  # the first key of this module's advisory locks ("LG")
# What the chain builder needs of an image row, returned by the insert (no read back).
_CHAIN_COLUMNS = (
    t.legacy_image.c.id,
    t.legacy_image.c.docker_image_id,
    t.legacy_image.c.blob_id,
    t.legacy_image.c.parent_id,
    t.legacy_image.c.ancestors,
    t.legacy_image.c.aggregate_size,
    t.legacy_image.c.v1_pushed,
)
_INSERT_IMAGES = t.legacy_image.insert().returning(
    t.legacy_image.c.id, sort_by_parameter_order=True
)
_LINK_PARENT = (
    update(t.legacy_image)
    .where(t.legacy_image.c.id == bindparam("image_pk"))
    .values(parent_id=bindparam("parent_pk"), ancestors=bindparam("ancestors"))
)
_IMAGES_BY_DOCKER_ID = select(*_CHAIN_COLUMNS).where(
    t.legacy_image.c.repository_id == bindparam("repository_id"),
    t.legacy_image.c.docker_image_id.in_(bindparam("docker_ids", expanding=True)),
)
# Not the repository row lock: manifest pushes that move tags take that one before they
# insert anything, and this one is taken after the manifest row; one lock for both would
# deadlock a push by tag against a push by digest of the same manifest.
_LOCK_CHAINS = select(
    func.pg_advisory_xact_lock(
        literal(LEGACY_CHAIN_LOCK_CLASS, Integer), bindparam("chain_key", type_=Integer)
    )
)
_MARK_V1_PUSHED = (
    update(t.legacy_image)
    .where(t.legacy_image.c.id == bindparam("image_pk"))
    .values(v1_pushed=True)
)


def existing_images(
    conn: Connection, repository_id: int, docker_ids: Iterable[str]
) -> dict[str, Any]:
    """Image rows of the repository by docker image id (those that exist)."""
    wanted = sorted(set(docker_ids))
    found: dict[str, Any] = {}
    for start in range(0, len(wanted), IN_BATCH):
        params = {"repository_id": repository_id, "docker_ids": wanted[start : start + IN_BATCH]}
        for row in conn.execute(_IMAGES_BY_DOCKER_ID, params):
            found[row.docker_image_id] = row
    return found


@dataclass(frozen=True, slots=True)
class _Plan:
    """What create_chain learnt before inserting: the chain, its rewritten ids, the
    visible blobs and the existing images by docker id."""

    chain: Sequence[V1Entry]
    rewritten_ids: list[str]
    blobs: Mapping[str, Any]
    images: Mapping[str, Any]
    v1_pushed: bool


def _rewrite_json(v1_json: str, image_id: str, parent: str | None) -> str:
    try:
        data = json.loads(v1_json)
    except ValueError:
        return v1_json
    if not isinstance(data, dict):
        return v1_json
    data["id"] = image_id
    if parent is None:
        data.pop("parent", None)
    else:
        data["parent"] = parent
    return json.dumps(data)


class LegacyImageMixin(SqlModelBase):
    def create_chain(
        self,
        conn: Connection,
        repository_id: int,
        chain: Sequence[V1Entry],
        now_ms: int,
        *,
        v1_pushed: bool = False,
        blobs: Mapping[str, Any] | None = None,
    ) -> int:
        """Stores the chain (base → leaf) and returns the leaf's row id. ``blobs``: rows of
        visible blobs by digest the caller has already read (the rest are looked up).

        An id already used in the repository for other content (another layer or parent)
        is rewritten, as Quay does, from the first conflict on: the new id is the running
        SHA-256 over ``blobSum@v1Compatibility|`` of every entry from the base up."""
        if not chain:
            raise DataModelError("a legacy image chain needs at least one image")
        # Images built on one base share its V1 ids: racing first pushes of two of them
        # would both find the base missing and insert it. A lock of the repository's
        # chains (held to the commit) makes the read below see what a racer committed.
        if conn.dialect.name == "postgresql":  # SQLite's write transactions are exclusive
            conn.execute(_LOCK_CHAINS, {"chain_key": repository_id % 2**31})
        known = dict(blobs or {})
        missing = {entry.blob_digest for entry in chain} - known.keys()
        if missing:
            known.update(visible_blobs(conn, repository_id, missing, now_ms))
        running = hashlib.sha256()
        rewritten_ids = []
        for entry in chain:
            running.update(f"{entry.blob_digest}@{entry.v1_json}|".encode())
            rewritten_ids.append(running.hexdigest())
        # Every image the loop may meet, in one query; rows it inserts are added as it goes.
        images = existing_images(
            conn, repository_id, {entry.id for entry in chain} | set(rewritten_ids)
        )
        rewriting = False
        parent_row: Any = None
        for index, (entry, rewritten_id) in enumerate(zip(chain, rewritten_ids, strict=True)):
            blob = known.get(entry.blob_digest)
            if blob is None:
                raise BlobUnknownError(entry.blob_digest)
            image_id = rewritten_id if rewriting else entry.id
            existing = images.get(image_id)
            parent_id = None if parent_row is None else parent_row.id
            if existing is None or existing.blob_id != blob.id or existing.parent_id != parent_id:
                if existing is not None:
                    rewriting, image_id = True, rewritten_id
                return self._insert_images(
                    conn,
                    repository_id,
                    _Plan(chain, rewritten_ids, known, images, v1_pushed),
                    index,
                    image_id,
                    rewriting,
                    parent_row,
                )
            if v1_pushed and not existing.v1_pushed:
                conn.execute(_MARK_V1_PUSHED, {"image_pk": existing.id})
            parent_row = existing
        return int(parent_row.id)

    def _insert_images(
        self,
        conn: Connection,
        repository_id: int,
        plan: _Plan,
        first: int,
        first_id: str,
        rewriting: bool,
        reused: Any,
    ) -> int:
        """Inserts the rest of the chain from ``first`` (whose id is decided) on, under
        ``reused`` (the last existing image, or None): one multi-row insert, then one
        executemany for the parent links, which need the new row ids.

        The choice of each id is the one-by-one rule of ``create_chain``: an id in use is a
        conflict, because no existing image can have a just-inserted one as its parent."""
        planned: list[dict[str, Any]] = []
        taken = set(plan.images)
        parent_docker_id = None if reused is None else reused.docker_image_id
        parent_size = 0 if reused is None else reused.aggregate_size or 0
        for index in range(first, len(plan.chain)):
            entry, rewritten_id = plan.chain[index], plan.rewritten_ids[index]
            blob = plan.blobs.get(entry.blob_digest)
            if blob is None:
                raise BlobUnknownError(entry.blob_digest)
            image_id = first_id
            if index != first:
                image_id = rewritten_id if rewriting else entry.id
                if image_id in taken:
                    rewriting, image_id = True, rewritten_id
            taken.add(image_id)
            size = (blob.compressed_size or 0) + parent_size
            planned.append(
                {
                    "repository_id": repository_id,
                    "docker_image_id": image_id,
                    "blob_id": blob.id,
                    "parent_id": None if reused is None else reused.id,
                    "ancestors": "/" if reused is None else f"{reused.ancestors}{reused.id}/",
                    "created": entry.created,
                    "comment": entry.comment,
                    "command": entry.command,
                    "author": entry.author,
                    "v1_json_metadata": (
                        _rewrite_json(entry.v1_json, image_id, parent_docker_id)
                        if rewriting
                        else entry.v1_json
                    ),
                    "aggregate_size": size,
                    "v1_pushed": plan.v1_pushed,
                }
            )
            parent_docker_id, parent_size = image_id, size
        ids = [int(row.id) for row in conn.execute(_INSERT_IMAGES, planned)]
        links = []
        ancestors = planned[0]["ancestors"]
        for previous, image_pk in itertools.pairwise(ids):
            ancestors = f"{ancestors}{previous}/"
            links.append({"image_pk": image_pk, "parent_pk": previous, "ancestors": ancestors})
        if links:
            conn.execute(_LINK_PARENT, links)
        return ids[-1]

    def create_legacy_images(
        self, repository_ref: RepositoryReference, chain: Sequence[V1Entry]
    ) -> LegacyImage:
        """Stores a V1 image chain (base → leaf), as a V1 push would; returns the leaf."""
        with self.database.write() as conn:
            leaf_id = self.create_chain(
                conn, repository_ref.id, chain, self.now_ms(), v1_pushed=True
            )
            return load_images(conn, [leaf_id], include_parents=True)[leaf_id]

    def get_legacy_images(self, repository_ref: RepositoryReference) -> list[LegacyImage] | None:
        now_ms = self.now_ms()
        with self.database.read() as conn:
            if self.repository_ref(conn, repository_ref.id) is None:
                return None
            known = rows_of_repository(conn, repository_ref.id)
            tag_rows = conn.execute(
                tag_query().where(
                    t.tag.c.repository_id == repository_ref.id,
                    t.tag.c.legacy_image_id.is_not(None),
                    alive_clause(now_ms),
                )
            ).all()
        tags_by_image: dict[int, list[Tag]] = {}
        for row in tag_rows:
            tags_by_image.setdefault(row.legacy_image_id, []).append(
                tag_from_row(row, repository_ref)
            )
        return [
            with_parents(row, known, _tags=tuple(tags_by_image.get(image_id, ())))
            for image_id, row in known.items()
        ]

    def get_legacy_image(
        self,
        repository_ref: RepositoryReference,
        docker_image_id: str,
        include_parents: bool = False,
        include_blob: bool = False,
    ) -> LegacyImage | None:
        with self.database.read() as conn:
            image_id = conn.execute(
                select(t.legacy_image.c.id, t.legacy_image.c.blob_id).where(
                    t.legacy_image.c.repository_id == repository_ref.id,
                    t.legacy_image.c.docker_image_id == docker_image_id,
                )
            ).first()
            if image_id is None:
                return None
            image = load_images(conn, [image_id.id], include_parents)[image_id.id]
            if not include_blob:
                return image
            blob_row = conn.execute(select(t.blob).where(t.blob.c.id == image_id.blob_id)).one()
            blob = self.blob_record(conn, blob_row, include_placements=True)
        return _with_blob(image, blob)

    def get_legacy_images_owned_by_tag(self, tag: Tag) -> list[LegacyImage] | None:
        now_ms = self.now_ms()
        with self.database.read() as conn:
            row = conn.execute(
                select(t.tag.c.legacy_image_id, t.tag.c.repository_id).where(t.tag.c.id == tag.id)
            ).first()
            if row is None or row.legacy_image_id is None:
                return None
            mine = load_rows(conn, [row.legacy_image_id])[row.legacy_image_id]
            candidates = {mine.id, *ancestor_ids(mine.ancestors)}
            others = conn.execute(
                select(t.legacy_image.c.id, t.legacy_image.c.ancestors)
                .join(t.tag, t.tag.c.legacy_image_id == t.legacy_image.c.id)
                .where(
                    t.tag.c.repository_id == row.repository_id,
                    t.tag.c.id != tag.id,
                    alive_clause(now_ms),
                )
            ).all()
            for other in others:
                candidates -= {other.id, *ancestor_ids(other.ancestors)}
            images = load_images(conn, candidates, include_parents=True)
        return [images[i] for i in sorted(images)]

    def _legacy_image_id_of(
        self, conn: Connection, target: Manifest | LegacyImage
    ) -> tuple[bool, int | None]:
        """(row exists, legacy image id) for a manifest or a legacy image."""
        if isinstance(target, LegacyImage):
            found = conn.execute(
                select(t.legacy_image.c.id).where(t.legacy_image.c.id == target.id)
            ).scalar()
            return found is not None, found
        exists_row = conn.execute(
            select(t.manifest.c.id, t.manifest_legacy_image.c.legacy_image_id)
            .outerjoin(t.manifest_legacy_image)
            .where(t.manifest.c.id == target.id)
        ).first()
        if exists_row is None:
            return False, None
        return True, exists_row.legacy_image_id

    def get_security_status(
        self, manifest_or_legacy_image: Manifest | LegacyImage
    ) -> SecurityScanStatus | None:
        with self.database.read() as conn:
            present, image_id = self._legacy_image_id_of(conn, manifest_or_legacy_image)
            if not present:
                return None
            if image_id is None:
                return SecurityScanStatus.UNSUPPORTED
            row = conn.execute(
                select(
                    t.legacy_image.c.security_indexed, t.legacy_image.c.security_indexed_engine
                ).where(t.legacy_image.c.id == image_id)
            ).one()
        if row.security_indexed_engine is None or row.security_indexed_engine < 0:
            return SecurityScanStatus.QUEUED
        return SecurityScanStatus.SCANNED if row.security_indexed else SecurityScanStatus.FAILED

    def set_security_status(
        self, legacy_image: LegacyImage, indexed: bool, engine_version: int
    ) -> None:
        """Records a scan result; ``engine_version`` -1 resets the image to unscanned."""
        with self.database.write() as conn:
            conn.execute(
                update(t.legacy_image)
                .where(t.legacy_image.c.id == legacy_image.id)
                .values(security_indexed=indexed, security_indexed_engine=engine_version)
            )

    def leaf_image_with_parents(self, conn: Connection, image_id: int) -> LegacyImage | None:
        return load_images(conn, [image_id], include_parents=True).get(image_id)


def _with_blob(image: LegacyImage, blob: Any) -> LegacyImage:
    from dataclasses import replace

    return replace(image, _blob=blob)


__all__ = ["LegacyImageMixin", "image_query"]
