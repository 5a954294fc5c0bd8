"""token auth: refresh tokens

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03

Refresh tokens (``offline_token=true``; docker keeps one as its identity token) are opaque;
only a keyed HMAC of each is stored, bound to one subject and one audience, revoked by
deleting the row. The token signing key generated on first start lives in registry_secret.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "refresh_token",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("subject_kind", sa.String(length=16), nullable=False),
        sa.Column("subject_name", sa.String(length=255), nullable=False),
        sa.Column("subject_id", sa.BigInteger(), nullable=True),
        sa.Column("audience", sa.String(length=255), nullable=False),
        sa.Column("client_id", sa.String(length=255), nullable=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refresh_token")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_refresh_token_token_hash")),
    )
    op.create_index(
        op.f("ix_refresh_token_subject_name"), "refresh_token", ["subject_name"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_refresh_token_subject_name"), table_name="refresh_token")
    op.drop_table("refresh_token")
