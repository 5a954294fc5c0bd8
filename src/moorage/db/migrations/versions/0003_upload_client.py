"""who opened each upload session, for the per-client cap on open sessions

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03

A client (today its address, later its account) may hold only so many open upload sessions,
however many workers it spreads them over: the count must come from the database. The
session start counts a client's sessions and the repository's in one indexed query.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("blob_upload") as batch:
        batch.add_column(sa.Column("client", sa.String(255), nullable=True))
    op.create_index("ix_blob_upload_client", "blob_upload", ["client"])


def downgrade() -> None:
    op.drop_index("ix_blob_upload_client", table_name="blob_upload")
    with op.batch_alter_table("blob_upload") as batch:
        batch.drop_column("client")
