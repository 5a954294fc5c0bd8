"""accounts: users, teams, robots, application tokens, repository permissions

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03

A user is a namespace of kind "user" (as in Quay) with credentials in user_account; teams
belong to organizations; robots to an organization or a user; repository permissions name
exactly one of a user, a team or a robot. Secrets of robots and application tokens are kept
as HMAC-SHA256 under a key in registry_secret, passwords as argon2id PHC strings.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "app_token",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("uuid", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("title", sa.String(length=255), nullable=False),
        sa.Column("token_hash", sa.LargeBinary(), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["namespace.id"],
            name=op.f("fk_app_token_user_id_namespace"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_app_token")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_app_token_token_hash")),
        sa.UniqueConstraint("uuid", name=op.f("uq_app_token_uuid")),
    )
    with op.batch_alter_table("app_token", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_app_token_user_id"), ["user_id"], unique=False)

    op.create_table(
        "robot",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "namespace_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("secret_hash", sa.LargeBinary(), nullable=False),
        sa.Column("description", sa.Text(), server_default=sa.text("('')"), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["namespace_id"],
            ["namespace.id"],
            name=op.f("fk_robot_namespace_id_namespace"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_robot")),
        sa.UniqueConstraint("namespace_id", "name", name=op.f("uq_robot_namespace_id_name")),
    )
    op.create_table(
        "team",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "namespace_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("description", sa.Text(), server_default=sa.text("('')"), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["namespace_id"],
            ["namespace.id"],
            name=op.f("fk_team_namespace_id_namespace"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_team")),
        sa.UniqueConstraint("namespace_id", "name", name=op.f("uq_team_namespace_id_name")),
    )
    op.create_table(
        "user_account",
        sa.Column(
            "namespace_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("password_hash", sa.String(length=255), nullable=True),
        sa.Column("superuser", sa.Boolean(), server_default=sa.text("(false)"), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.text("(true)"), nullable=False),
        sa.ForeignKeyConstraint(
            ["namespace_id"],
            ["namespace.id"],
            name=op.f("fk_user_account_namespace_id_namespace"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("namespace_id", name=op.f("pk_user_account")),
    )
    op.create_table(
        "repository_permission",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "repository_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("team_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("robot_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["repository.id"],
            name=op.f("fk_repository_permission_repository_id_repository"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["robot_id"],
            ["robot.id"],
            name=op.f("fk_repository_permission_robot_id_robot"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["team.id"],
            name=op.f("fk_repository_permission_team_id_team"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["namespace.id"],
            name=op.f("fk_repository_permission_user_id_namespace"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_repository_permission")),
        sa.UniqueConstraint(
            "repository_id",
            "robot_id",
            name=op.f("uq_repository_permission_repository_id_robot_id"),
        ),
        sa.UniqueConstraint(
            "repository_id", "team_id", name=op.f("uq_repository_permission_repository_id_team_id")
        ),
        sa.UniqueConstraint(
            "repository_id", "user_id", name=op.f("uq_repository_permission_repository_id_user_id")
        ),
    )
    with op.batch_alter_table("repository_permission", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_repository_permission_robot_id"), ["robot_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_repository_permission_team_id"), ["team_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_repository_permission_user_id"), ["user_id"], unique=False
        )

    op.create_table(
        "team_member",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("team_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("robot_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.ForeignKeyConstraint(
            ["robot_id"],
            ["robot.id"],
            name=op.f("fk_team_member_robot_id_robot"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["team_id"], ["team.id"], name=op.f("fk_team_member_team_id_team"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["namespace.id"],
            name=op.f("fk_team_member_user_id_namespace"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_team_member")),
        sa.UniqueConstraint("team_id", "robot_id", name=op.f("uq_team_member_team_id_robot_id")),
        sa.UniqueConstraint("team_id", "user_id", name=op.f("uq_team_member_team_id_user_id")),
    )
    with op.batch_alter_table("team_member", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_team_member_robot_id"), ["robot_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_team_member_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("team_member", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_team_member_user_id"))
        batch_op.drop_index(batch_op.f("ix_team_member_robot_id"))

    op.drop_table("team_member")
    with op.batch_alter_table("repository_permission", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_repository_permission_user_id"))
        batch_op.drop_index(batch_op.f("ix_repository_permission_team_id"))
        batch_op.drop_index(batch_op.f("ix_repository_permission_robot_id"))

    op.drop_table("repository_permission")
    op.drop_table("user_account")
    op.drop_table("team")
    op.drop_table("robot")
    with op.batch_alter_table("app_token", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_app_token_user_id"))

    op.drop_table("app_token")
