"""garbage collection: candidate queue, pending byte deletes, indexes

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03

``gc_candidate`` holds the rows that events made possibly unreferenced (re-checked before
anything is deleted); ``gc_pending_delete`` the storage objects whose rows are gone, so a
crash between a row delete and its bytes delete is finished by the next cycle. The indexes
let a cycle with nothing to collect answer from index probes only.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "gc_candidate",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("target_id", sa.BigInteger(), nullable=False),
        sa.Column("due_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gc_candidate")),
        sa.UniqueConstraint("kind", "target_id", name=op.f("uq_gc_candidate_kind_target_id")),
    )
    op.create_index("ix_gc_candidate_kind_due", "gc_candidate", ["kind", "due_ms"])
    op.create_table(
        "gc_pending_delete",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("location_name", sa.String(length=255), nullable=False),
        sa.Column("digest", sa.String(length=200), nullable=True),
        sa.Column("blob_uuid", sa.String(length=36), nullable=False),
        sa.Column("content_addressed", sa.Boolean(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gc_pending_delete")),
    )
    op.create_index("ix_tag_hidden_lifetime_end_ms", "tag", ["hidden", "lifetime_end_ms"])
    op.create_index("ix_repository_state", "repository", ["state"])
    op.create_index(
        "ix_namespace_removed_tag_expiration_s", "namespace", ["removed_tag_expiration_s"]
    )


def downgrade() -> None:
    op.drop_index("ix_namespace_removed_tag_expiration_s", table_name="namespace")
    op.drop_index("ix_repository_state", table_name="repository")
    op.drop_index("ix_tag_hidden_lifetime_end_ms", table_name="tag")
    op.drop_table("gc_pending_delete")
    op.drop_index("ix_gc_candidate_kind_due", table_name="gc_candidate")
    op.drop_table("gc_candidate")
