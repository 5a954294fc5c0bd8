"""blob-then-repository indexes; drop indexes that unique keys already cover

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27

Whether a repository may see a blob (every blob HEAD and GET, every layer of a manifest
push) is asked by blob id and repository id together. With one index on each column,
SQLite without statistics walked every row the repository links and fetched each one to
compare blob ids, so the cost grew with the repository. One (blob_id, repository_id) index
per linking table answers with a single probe; it also serves the lookups by blob alone.

Dropped: single-column indexes that a unique constraint (or the new index) already leads
with, which every insert paid to maintain.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# table -> the single-column index that the composite one replaces
_REPLACED = {
    "manifest_blob": "ix_manifest_blob_blob_id",
    "legacy_image": "ix_legacy_image_blob_id",
    "uploaded_blob": "ix_uploaded_blob_blob_id",
}
# (table, index, its column): each covered by a unique constraint leading with that column
_COVERED = (
    ("blob_placement", "ix_blob_placement_blob_id", "blob_id"),
    ("torrent_info", "ix_torrent_info_blob_id", "blob_id"),
    ("blob_upload", "ix_blob_upload_repository_id", "repository_id"),
    ("legacy_image", "ix_legacy_image_repository_id", "repository_id"),
)


def upgrade() -> None:
    for table, old in _REPLACED.items():
        op.create_index(f"ix_{table}_blob_repository", table, ["blob_id", "repository_id"])
        op.drop_index(old, table_name=table)
    for table, index, _column in _COVERED:
        op.drop_index(index, table_name=table)


def downgrade() -> None:
    for table, index, column in _COVERED:
        op.create_index(index, table, [column])
    for table, old in _REPLACED.items():
        op.create_index(old, table, ["blob_id"])
        op.drop_index(f"ix_{table}_blob_repository", table_name=table)
