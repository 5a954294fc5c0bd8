"""Garbage collection: finding and deleting unreferenced rows (the protocol: docs/gc.md).

Candidates come from ``gc_candidate`` (filled by the steps that can make garbage) and from
index ranges (expired tags by end, expired links by expiry, marked repositories by state),
so a cycle with nothing to collect costs a few index probes. Every delete re-checks the
row's references in its own transaction, under the row lock (PostgreSQL ``FOR UPDATE SKIP
LOCKED``: a row another GC or a writer holds is left for the next cycle; SQLite write
transactions are exclusive), and those references are fetched and judged in Python so that
a dry run can judge them as if the rows it found so far were gone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, and_, delete, func, literal, or_, select, update

from moorage.db import tables as t
from moorage.domain.records import BlobUpload, RepositoryState
from moorage.model.interface.maintenance import (
    GcFreed,
    GcGone,
    GcObject,
    GcRepositoryStep,
    GcWindows,
    lock_name,
)
from moorage.model.sql.base import SqlModelBase, ignoring_conflict
from moorage.model.sql.digest_locks import DigestLocks
from moorage.model.sql.uploads import upload_query, upload_record

MANIFEST, LEGACY_IMAGE, BLOB = "manifest", "legacy_image", "blob"
_MARKED = RepositoryState.MARKED_FOR_DELETION.value
_NO_GONE = GcGone()


def _ids(conn: Connection, query: Any) -> tuple[int, ...]:
    """The one column of ``query``'s rows, as ids."""
    return tuple(int(value) for value in conn.execute(query).scalars())


def _ms(moment: datetime) -> int:
    if moment.tzinfo is None:  # SQLite keeps no time zone; every stored time is UTC
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


class GcMixin(SqlModelBase):
    # -- locks ---------------------------------------------------------------------------

    def _digest_locks(self) -> DigestLocks:
        locks: DigestLocks | None = self.__dict__.get("_gc_digest_locks")
        if locks is None:
            locks = self.__dict__.setdefault("_gc_digest_locks", DigestLocks(self.database))
        return locks

    def holding_blob_digest(self, digest: str) -> AbstractContextManager[None]:
        return self._digest_locks().shared(digest)

    def gc_try_digest(self, digest: str) -> AbstractContextManager[bool]:
        return self._digest_locks().exclusive(digest)

    def close_digest_locks(self) -> None:
        """Closes the lock connections (PostgreSQL); the next hold opens new ones."""
        locks: DigestLocks | None = self.__dict__.pop("_gc_digest_locks", None)
        if locks is not None:
            locks.close()

    def _lock(self, conn: Connection, table: Any, row_id: int) -> Any:
        """The row, locked against writers and other GCs; None if gone or held elsewhere."""
        query = select(table).where(table.c.id == row_id)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        return conn.execute(query).first()

    def _hold(self, conn: Connection, table: Any, ids: Iterable[int | None]) -> None:
        """Share-lock the rows a delete is about to free, before it removes their holder.

        A collector of one of them locks it (``_lock``) before it looks for holders; it
        reads committed rows only, so without this it could see our not yet committed
        holder, drop the candidate, and have our enqueue of it come first and be ignored:
        the row would never be looked at again. Holding it, a collector either finished
        before us (we enqueue after its dequeue) or skips the row until we commit.
        SQLite runs one writer at a time, so the race needs no lock there."""
        wanted = sorted({int(i) for i in ids if i})
        if wanted and conn.dialect.name == "postgresql":
            conn.execute(
                select(table.c.id)
                .where(table.c.id.in_(wanted))
                .order_by(table.c.id)
                .with_for_update(key_share=True)
            ).all()

    # -- the candidate queue -------------------------------------------------------------

    def _enqueue(self, conn: Connection, kind: str, ids: Iterable[int | None], due_ms: int) -> None:
        rows = [{"kind": kind, "target_id": i, "due_ms": due_ms} for i in dict.fromkeys(ids) if i]
        if rows:
            conn.execute(ignoring_conflict(conn, t.gc_candidate, ["kind", "target_id"]), rows)

    def _enqueue_selected(self, conn: Connection, kind: str, ids: Any, due_ms: int) -> None:
        """Every id ``ids`` (a one-column select) selects, in one statement."""
        c = t.gc_candidate.c
        selected = ids.subquery()
        # The WHERE keeps SQLite from reading ON CONFLICT as a join constraint.
        rows = select(literal(kind), selected.c.id, literal(due_ms)).where(selected.c.id > 0)
        statement = ignoring_conflict(conn, t.gc_candidate, ["kind", "target_id"])
        conn.execute(statement.from_select([c.kind, c.target_id, c.due_ms], rows))

    def _dequeue(self, conn: Connection, kind: str, target_id: int) -> None:
        conn.execute(
            delete(t.gc_candidate).where(
                t.gc_candidate.c.kind == kind, t.gc_candidate.c.target_id == target_id
            )
        )

    def _postpone(self, conn: Connection, kind: str, target_id: int, due_ms: int) -> None:
        conn.execute(
            update(t.gc_candidate)
            .where(t.gc_candidate.c.kind == kind, t.gc_candidate.c.target_id == target_id)
            .values(due_ms=due_ms)
        )

    def gc_candidates(self, kind: str, limit: int, after_id: int = 0) -> list[int]:
        c = t.gc_candidate.c
        with self.database.read() as conn:
            rows = conn.execute(
                select(c.target_id)
                .where(c.kind == kind, c.due_ms <= self.now_ms(), c.target_id > after_id)
                .order_by(c.target_id)
                .limit(limit)
            ).scalars()
            return [int(value) for value in rows]

    def gc_queue_sizes(self) -> dict[str, int]:
        with self.database.read() as conn:
            grouped = select(t.gc_candidate.c.kind, func.count()).group_by(t.gc_candidate.c.kind)
            counts: dict[str, int] = {str(k): int(n) for k, n in conn.execute(grouped).all()}
            pending = conn.execute(select(func.count()).select_from(t.gc_pending_delete))
            sizes = {kind: int(counts.get(kind, 0)) for kind in (MANIFEST, LEGACY_IMAGE, BLOB)}
            sizes["pending_objects"] = int(pending.scalar_one())
            return sizes

    # -- phase 1: tags past their window -------------------------------------------------

    def _tag_expired(self, row: Any, window_s: int, windows: GcWindows, now_ms: int) -> bool:
        """A tag version no one can see or restore any more (alive ones never are)."""
        end = row.lifetime_end_ms
        if end is None:
            return False
        if row.hidden:
            return bool(end < now_ms - windows.tag_grace_ms)
        return bool(end < now_ms - window_s * 1000)

    def gc_expired_tags(
        self, windows: GcWindows, after: tuple[int, int] | None, limit: int
    ) -> list[tuple[int, int]]:
        tag, namespace = t.tag.c, t.namespace.c
        now_ms = self.now_ms()
        with self.database.read() as conn:
            # The shortest window (an index probe) bounds the visible range: with one
            # window everywhere, nothing inside it is ever read.
            shortest = conn.execute(select(func.min(namespace.removed_tag_expiration_s))).scalar()
            ranges = [
                and_(tag.hidden.is_(True), tag.lifetime_end_ms < now_ms - windows.tag_grace_ms)
            ]
            if shortest is not None:
                visible_upper = now_ms - int(shortest) * 1000
                ranges.append(and_(tag.hidden.is_(False), tag.lifetime_end_ms < visible_upper))
            found: list[tuple[int, int]] = []
            for in_range in ranges:
                query = (
                    select(
                        tag.id, tag.lifetime_end_ms, tag.hidden, namespace.removed_tag_expiration_s
                    )
                    .join(t.repository, t.repository.c.id == tag.repository_id)
                    .join(t.namespace, namespace.id == t.repository.c.namespace_id)
                    .where(in_range)
                    .order_by(tag.lifetime_end_ms, tag.id)
                    .limit(limit)
                )
                if after is not None:
                    query = query.where(
                        or_(
                            tag.lifetime_end_ms > after[0],
                            and_(tag.lifetime_end_ms == after[0], tag.id > after[1]),
                        )
                    )
                for row in conn.execute(query):
                    if self._tag_expired(row, row.removed_tag_expiration_s, windows, now_ms):
                        found.append((int(row.lifetime_end_ms), int(row.id)))
        return sorted(found)[:limit]

    def gc_purge_tags(
        self, tag_ids: Sequence[int], windows: GcWindows, *, dry_run: bool
    ) -> GcFreed:
        if not tag_ids:
            return GcFreed()
        tag, namespace = t.tag.c, t.namespace.c
        now_ms = self.now_ms()
        context = self.database.read() if dry_run else self.database.write()
        with context as conn:
            rows = conn.execute(
                select(
                    tag.id,
                    tag.lifetime_end_ms,
                    tag.hidden,
                    tag.manifest_id,
                    tag.legacy_image_id,
                    namespace.removed_tag_expiration_s,
                )
                .join(t.repository, t.repository.c.id == tag.repository_id)
                .join(t.namespace, namespace.id == t.repository.c.namespace_id)
                .where(tag.id.in_(list(tag_ids)))
            ).all()
            # Re-judged now: a tag revived (its end moved) since it was listed stays.
            expired = [
                r for r in rows if self._tag_expired(r, r.removed_tag_expiration_s, windows, now_ms)
            ]
            manifests = tuple(r.manifest_id for r in expired if r.manifest_id)
            images = tuple(r.legacy_image_id for r in expired if r.legacy_image_id)
            if dry_run or not expired:
                return GcFreed(
                    deleted=bool(expired),
                    tags=len(expired),
                    manifests=manifests,
                    legacy_images=images,
                )
            count = 0
            for r in expired:
                # The end is part of the condition: PostgreSQL re-checks it against a
                # concurrent change, so a version revived meanwhile is not deleted.
                result = conn.execute(
                    delete(t.tag).where(tag.id == r.id, tag.lifetime_end_ms == r.lifetime_end_ms)
                )
                count += result.rowcount
            self._enqueue(conn, MANIFEST, manifests, now_ms)
            self._enqueue(conn, LEGACY_IMAGE, images, now_ms)
            return GcFreed(deleted=count > 0, tags=count, manifests=manifests, legacy_images=images)

    # -- repositories marked for deletion --------------------------------------------------

    def gc_marked_repositories(self, limit: int) -> list[int]:
        with self.database.read() as conn:
            rows = conn.execute(
                select(t.repository.c.id)
                .where(t.repository.c.state == _MARKED)
                .order_by(t.repository.c.id)
                .limit(limit)
            ).scalars()
            return [int(value) for value in rows]

    def gc_collect_repository(
        self, repository_id: int, limit: int, *, dry_run: bool
    ) -> GcRepositoryStep:
        now_ms = self.now_ms()
        context = self.database.read() if dry_run else self.database.write()
        with context as conn:
            if not dry_run and not self.lock_repository(conn, repository_id):
                return GcRepositoryStep(0, 0, GcFreed(), (), False)  # another GC removed it
            state = conn.execute(
                select(t.repository.c.state).where(t.repository.c.id == repository_id)
            ).scalar()
            if state != _MARKED:
                return GcRepositoryStep(0, 0, GcFreed(), (), False)
            bound = None if dry_run else limit  # a dry run changes nothing: it sees all at once
            tags = conn.execute(
                select(t.tag.c.id, t.tag.c.manifest_id, t.tag.c.legacy_image_id)
                .where(t.tag.c.repository_id == repository_id)
                .order_by(t.tag.c.id)
                .limit(bound)
            ).all()
            links = conn.execute(
                select(t.uploaded_blob.c.id, t.uploaded_blob.c.blob_id)
                .where(t.uploaded_blob.c.repository_id == repository_id)
                .order_by(t.uploaded_blob.c.id)
                .limit(bound)
            ).all()
            in_repository = (
                select(t.manifest.c.id).where(t.manifest.c.repository_id == repository_id),
                select(t.legacy_image.c.id).where(t.legacy_image.c.repository_id == repository_id),
            )
            # A dry run lists them (its candidates); a real step only needs to know whether
            # any is left, and enqueues them all server-side below.
            manifests, images = (
                _ids(conn, query if dry_run else query.limit(1)) for query in in_repository
            )
            uploads: tuple[BlobUpload, ...] = tuple(
                upload_record(row)
                for row in conn.execute(
                    upload_query()
                    .where(t.blob_upload.c.repository_id == repository_id)
                    .order_by(t.blob_upload.c.id)
                    .limit(bound)
                )
            )
            freed = GcFreed(
                deleted=bool(tags or links),
                tags=len(tags),
                manifests=manifests if dry_run else (),
                legacy_images=images if dry_run else (),
                blobs=tuple(int(link.blob_id) for link in links),
            )
            empty = not (tags or links or manifests or images or uploads)
            if dry_run:
                return GcRepositoryStep(len(tags), len(links), freed, uploads, empty)
            if tags:
                conn.execute(delete(t.tag).where(t.tag.c.id.in_([r.id for r in tags])))
            if links:
                conn.execute(
                    delete(t.uploaded_blob).where(t.uploaded_blob.c.id.in_([r.id for r in links]))
                )
            for kind, query in zip((MANIFEST, LEGACY_IMAGE), in_repository, strict=True):
                self._enqueue_selected(conn, kind, query, now_ms)
            self._enqueue(conn, BLOB, freed.blobs, now_ms)
            if empty:
                # Only an empty repository row goes: a push that still slipped something in
                # (it resolved the repository before the mark) is collected next cycle.
                conn.execute(delete(t.repository).where(t.repository.c.id == repository_id))
            return GcRepositoryStep(len(tags), len(links), freed, uploads, empty)

    # -- links -------------------------------------------------------------------------

    def gc_expired_links(self, windows: GcWindows, limit: int, *, dry_run: bool) -> GcFreed:
        link = t.uploaded_blob.c
        cutoff = self.now_ms() - windows.blob_grace_ms
        query = (
            select(link.id, link.blob_id)
            .where(link.expires_at_ms < cutoff)
            .order_by(link.expires_at_ms)
        )
        if dry_run:
            with self.database.read() as conn:
                rows = conn.execute(query).all()
            return GcFreed(deleted=bool(rows), blobs=tuple(int(r.blob_id) for r in rows))
        with self.database.write() as conn:
            rows = conn.execute(query.limit(limit)).all()
            if rows:
                conn.execute(
                    delete(t.uploaded_blob).where(
                        link.id.in_([r.id for r in rows]), link.expires_at_ms < cutoff
                    )
                )
                self._enqueue(conn, BLOB, (r.blob_id for r in rows), self.now_ms())
            return GcFreed(deleted=bool(rows), blobs=tuple(int(r.blob_id) for r in rows))

    # -- phase 2: manifests and legacy images ------------------------------------------------

    def _window_s(self, conn: Connection, repository_id: int) -> int:
        window = conn.execute(
            select(t.namespace.c.removed_tag_expiration_s)
            .join(t.repository, t.repository.c.namespace_id == t.namespace.c.id)
            .where(t.repository.c.id == repository_id)
        ).scalar()
        return int(window or 0)

    def _keeping_tags(
        self,
        conn: Connection,
        column: Any,
        target_id: int,
        repository_id: int,
        windows: GcWindows,
        gone: GcGone,
    ) -> tuple[bool, list[int]]:
        """(whether a live, restorable or unexpired temp tag points at the target, the
        ids of the expired tag rows that point at it and go with it)."""
        rows = conn.execute(
            select(t.tag.c.id, t.tag.c.lifetime_end_ms, t.tag.c.hidden).where(column == target_id)
        ).all()
        if repository_id in gone.repositories:  # a deleted repository's tags all go
            return False, [r.id for r in rows]
        window_s = self._window_s(conn, repository_id)
        now_ms = self.now_ms()
        expired = [r.id for r in rows if self._tag_expired(r, window_s, windows, now_ms)]
        return len(expired) < len(rows), expired

    def gc_collect_manifest(
        self, manifest_id: int, windows: GcWindows, gone: GcGone | None = None
    ) -> GcFreed:
        dry_run = gone is not None
        gone = gone or _NO_GONE
        now_ms = self.now_ms()
        context = self.database.read() if dry_run else self.database.write()
        with context as conn:
            found = conn.execute(
                select(t.manifest.c.repository_id).where(t.manifest.c.id == manifest_id)
            ).scalar()
            if found is None:
                if not dry_run:
                    self._dequeue(conn, MANIFEST, manifest_id)
                return GcFreed()
            repository_id = int(found)
            # The repository first, as every tag writer takes it: restores and tag moves
            # of this repository wait for (or come before) the whole re-check and delete.
            if not dry_run and not self.lock_repository(conn, repository_id):
                return GcFreed()
            row = (
                conn.execute(select(t.manifest).where(t.manifest.c.id == manifest_id)).first()
                if dry_run
                else self._lock(conn, t.manifest, manifest_id)
            )
            if row is None:
                return GcFreed()  # gone, or held by a writer or another GC: next cycle
            state = conn.execute(
                select(t.repository.c.state).where(t.repository.c.id == repository_id)
            ).scalar()
            if state == _MARKED:  # nothing can be pushed to it any more: no grace
                gone = GcGone(
                    gone.repositories | {repository_id}, gone.manifests, gone.legacy_images
                )
            kept, expired_tags = self._manifest_kept(conn, row, windows, gone, now_ms)
            if kept is not None:
                if not dry_run:
                    if kept > now_ms:
                        self._postpone(conn, MANIFEST, manifest_id, kept)
                    else:
                        self._dequeue(conn, MANIFEST, manifest_id)
                return GcFreed()
            blobs = _ids(
                conn,
                select(t.manifest_blob.c.blob_id).where(
                    t.manifest_blob.c.manifest_id == manifest_id
                ),
            )
            children = _ids(
                conn,
                select(t.manifest_child.c.child_manifest_id).where(
                    t.manifest_child.c.manifest_id == manifest_id
                ),
            )
            referrers = _ids(
                conn,
                select(t.manifest.c.id).where(
                    t.manifest.c.repository_id == repository_id,
                    t.manifest.c.subject_digest == row.digest,
                    t.manifest.c.id != manifest_id,
                ),
            )
            images = _ids(
                conn,
                select(t.manifest_legacy_image.c.legacy_image_id).where(
                    t.manifest_legacy_image.c.manifest_id == manifest_id
                ),
            )
            freed = GcFreed(
                deleted=True,
                tags=len(expired_tags),
                manifests=children + referrers,
                legacy_images=images,
                blobs=blobs,
            )
            if dry_run:
                return freed
            labels = list(
                _ids(
                    conn,
                    select(t.manifest_label.c.label_id).where(
                        t.manifest_label.c.manifest_id == manifest_id
                    ),
                )
            )
            self._hold(conn, t.legacy_image, images)
            self._hold(conn, t.blob, blobs)
            if expired_tags:
                conn.execute(delete(t.tag).where(t.tag.c.id.in_(expired_tags)))
            # Links, children, labels and the legacy image link go with it (ON DELETE CASCADE).
            conn.execute(delete(t.manifest).where(t.manifest.c.id == manifest_id))
            if labels:
                conn.execute(
                    delete(t.label).where(
                        t.label.c.id.in_(labels),
                        ~select(t.manifest_label.c.id)
                        .where(t.manifest_label.c.label_id == t.label.c.id)
                        .exists(),
                    )
                )
            self._dequeue(conn, MANIFEST, manifest_id)
            self._enqueue(conn, MANIFEST, freed.manifests, now_ms)
            self._enqueue(conn, LEGACY_IMAGE, images, now_ms)
            self._enqueue(conn, BLOB, blobs, now_ms)
            return freed

    def _manifest_kept(
        self, conn: Connection, row: Any, windows: GcWindows, gone: GcGone, now_ms: int
    ) -> tuple[int | None, list[int]]:
        """(None if nothing keeps the manifest, else when to look again, the expired tag
        rows that go with it)."""
        tagged, expired = self._keeping_tags(
            conn, t.tag.c.manifest_id, row.id, row.repository_id, windows, gone
        )
        if tagged:
            return now_ms, expired
        parents = conn.execute(
            select(t.manifest_child.c.manifest_id).where(
                t.manifest_child.c.child_manifest_id == row.id
            )
        ).scalars()
        if any(int(parent) not in gone.manifests for parent in parents):
            return now_ms, expired  # an index holds it: collected after the index
        if row.subject_digest is not None:
            subjects = conn.execute(
                select(t.manifest.c.id).where(
                    t.manifest.c.repository_id == row.repository_id,
                    t.manifest.c.digest == row.subject_digest,
                )
            ).scalars()
            if any(int(subject) not in gone.manifests for subject in subjects):
                return now_ms, expired  # a referrer lives as long as its subject
        if row.repository_id not in gone.repositories:
            young_until = _ms(row.created) + windows.manifest_grace_ms
            if young_until > now_ms:
                return young_until, expired
        return None, expired

    def gc_collect_legacy_image(
        self, image_id: int, windows: GcWindows, gone: GcGone | None = None
    ) -> GcFreed:
        dry_run = gone is not None
        gone = gone or _NO_GONE
        image = t.legacy_image.c
        now_ms = self.now_ms()
        context = self.database.read() if dry_run else self.database.write()
        with context as conn:
            row = (
                conn.execute(select(t.legacy_image).where(image.id == image_id)).first()
                if dry_run
                else self._lock(conn, t.legacy_image, image_id)
            )
            if row is None:
                if (
                    not dry_run
                    and conn.execute(select(image.id).where(image.id == image_id)).first() is None
                ):
                    self._dequeue(conn, LEGACY_IMAGE, image_id)
                return GcFreed()
            tagged, expired_tags = self._keeping_tags(
                conn, t.tag.c.legacy_image_id, image_id, row.repository_id, windows, gone
            )
            holders = conn.execute(
                select(t.manifest_legacy_image.c.manifest_id).where(
                    t.manifest_legacy_image.c.legacy_image_id == image_id
                )
            ).scalars()
            held = any(int(m) not in gone.manifests for m in holders)
            children = conn.execute(select(image.id).where(image.parent_id == image_id)).scalars()
            has_child = any(int(c) not in gone.legacy_images for c in children)
            if tagged or held or has_child:
                if not dry_run:
                    self._dequeue(conn, LEGACY_IMAGE, image_id)
                return GcFreed()
            derived = _ids(
                conn,
                select(t.derived_image.c.blob_id).where(
                    t.derived_image.c.source_legacy_image_id == image_id
                ),
            )
            freed = GcFreed(
                deleted=True,
                tags=len(expired_tags),
                legacy_images=(row.parent_id,) if row.parent_id else (),
                blobs=(int(row.blob_id), *derived),
            )
            if dry_run:
                return freed
            self._hold(conn, t.legacy_image, freed.legacy_images)
            self._hold(conn, t.blob, freed.blobs)
            if expired_tags:
                conn.execute(delete(t.tag).where(t.tag.c.id.in_(expired_tags)))
            conn.execute(
                delete(t.derived_image).where(t.derived_image.c.source_legacy_image_id == image_id)
            )
            conn.execute(delete(t.legacy_image).where(image.id == image_id))
            self._dequeue(conn, LEGACY_IMAGE, image_id)
            self._enqueue(conn, LEGACY_IMAGE, freed.legacy_images, now_ms)
            self._enqueue(conn, BLOB, freed.blobs, now_ms)
            return freed

    # -- phase 3: blobs and their bytes --------------------------------------------------

    def gc_blob_digest(self, blob_id: int) -> str | None:
        with self.database.read() as conn:
            row = conn.execute(
                select(t.blob.c.digest, t.blob.c.uuid, t.blob.c.content_addressed).where(
                    t.blob.c.id == blob_id
                )
            ).first()
        if row is None:
            return None
        return lock_name(row.digest, row.uuid, row.content_addressed)

    def gc_collect_blob(
        self, blob_id: int, windows: GcWindows, gone: GcGone | None = None
    ) -> list[GcObject] | None:
        dry_run = gone is not None
        gone = gone or _NO_GONE
        now_ms = self.now_ms()
        context = self.database.read() if dry_run else self.database.write()
        with context as conn:
            row = (
                conn.execute(select(t.blob).where(t.blob.c.id == blob_id)).first()
                if dry_run
                else self._lock(conn, t.blob, blob_id)
            )
            if row is None:
                if (
                    not dry_run
                    and conn.execute(select(t.blob.c.id).where(t.blob.c.id == blob_id)).first()
                    is None
                ):
                    self._dequeue(conn, BLOB, blob_id)
                return None
            keep_until = self._blob_kept(conn, row, windows, gone, now_ms)
            if keep_until is not None:
                if not dry_run:
                    if keep_until > now_ms:
                        self._postpone(conn, BLOB, blob_id, keep_until)
                    else:
                        self._dequeue(conn, BLOB, blob_id)
                return None
            placed = conn.execute(
                select(t.storage_location.c.name)
                .join(
                    t.blob_placement,
                    t.blob_placement.c.storage_location_id == t.storage_location.c.id,
                )
                .where(t.blob_placement.c.blob_id == blob_id)
                .order_by(t.storage_location.c.name)
            ).scalars()
            names = [str(name) for name in placed]
            addressed = bool(row.content_addressed and row.digest)
            if not addressed:
                # A derived object may be stored before its placement is recorded.
                names = sorted(set(names) | set(self.locations))
            size = int(row.compressed_size or 0)
            objects = [
                GcObject(0, name, row.digest, str(row.uuid), addressed, size) for name in names
            ]
            if dry_run:
                return objects
            conn.execute(delete(t.uploaded_blob).where(t.uploaded_blob.c.blob_id == blob_id))
            # Placements, torrent info and signatures go with it (ON DELETE CASCADE).
            conn.execute(delete(t.blob).where(t.blob.c.id == blob_id))
            recorded = []
            for item in objects:
                pending_id = conn.execute(
                    t.gc_pending_delete.insert().returning(t.gc_pending_delete.c.id),
                    {
                        "location_name": item.location_name,
                        "digest": item.digest,
                        "blob_uuid": item.blob_uuid,
                        "content_addressed": item.content_addressed,
                        "size": item.size,
                        "created_ms": now_ms,
                    },
                ).scalar_one()
                recorded.append(
                    GcObject(
                        int(pending_id),
                        item.location_name,
                        row.digest,
                        str(row.uuid),
                        addressed,
                        size,
                    )
                )
            self._dequeue(conn, BLOB, blob_id)
            return recorded

    def _blob_kept(
        self, conn: Connection, row: Any, windows: GcWindows, gone: GcGone, now_ms: int
    ) -> int | None:
        """None if nothing references the blob, else when to look again."""
        blob_id = row.id
        holders = conn.execute(
            select(t.manifest_blob.c.manifest_id).where(t.manifest_blob.c.blob_id == blob_id)
        ).scalars()
        if any(int(m) not in gone.manifests for m in holders):
            return now_ms
        images = conn.execute(
            select(t.legacy_image.c.id).where(t.legacy_image.c.blob_id == blob_id)
        ).scalars()
        if any(int(i) not in gone.legacy_images for i in images):
            return now_ms
        derived_from = conn.execute(
            select(t.derived_image.c.source_legacy_image_id).where(
                t.derived_image.c.blob_id == blob_id
            )
        ).scalars()
        if any(int(i) not in gone.legacy_images for i in derived_from):
            return now_ms
        link_end = conn.execute(
            select(func.max(t.uploaded_blob.c.expires_at_ms)).where(
                t.uploaded_blob.c.blob_id == blob_id,
                t.uploaded_blob.c.repository_id.not_in(list(gone.repositories) or [0]),
            )
        ).scalar()
        if link_end is not None and int(link_end) + windows.blob_grace_ms >= now_ms:
            return int(link_end) + windows.blob_grace_ms + 1
        young_until = _ms(row.created) + windows.blob_grace_ms
        if young_until > now_ms:
            return young_until
        return None

    def gc_pending_objects(self, after_id: int, limit: int) -> list[GcObject]:
        p = t.gc_pending_delete.c
        with self.database.read() as conn:
            rows = conn.execute(
                select(t.gc_pending_delete).where(p.id > after_id).order_by(p.id).limit(limit)
            ).all()
        return [
            GcObject(
                int(r.id),
                r.location_name,
                r.digest,
                r.blob_uuid,
                bool(r.content_addressed),
                int(r.size or 0),
            )
            for r in rows
        ]

    def gc_digest_recorded(self, digest: str) -> bool:
        with self.database.read() as conn:
            return (
                conn.execute(select(t.blob.c.id).where(t.blob.c.digest == digest)).first()
                is not None
            )

    def gc_forget_objects(self, object_ids: Sequence[int]) -> None:
        if object_ids:
            with self.database.write() as conn:
                conn.execute(
                    delete(t.gc_pending_delete).where(
                        t.gc_pending_delete.c.id.in_(list(object_ids))
                    )
                )
