"""What the token service keeps in the database: registry secrets (the generated signing
key, the refresh-token HMAC key) and refresh tokens (keyed hashes only)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, insert, select

from moorage.db import tables as t
from moorage.db.engine import Database
from moorage.domain.access import Principal, PrincipalKind
from moorage.model.sql.base import insert_ignoring_conflict


@dataclass(frozen=True, slots=True)
class RefreshTokenRecord:
    token_hash: str  # hex HMAC-SHA256 of the token under the registry's refresh key
    subject: Principal
    audience: str
    client_id: str | None
    created: datetime


class SqlTokenStore:
    def __init__(self, database: Database) -> None:
        self.database = database

    def secret(self, name: str, create: Callable[[], bytes]) -> bytes:
        """The secret ``name``; the first worker to ask creates it (insert-or-get, so two
        starting at once agree on one)."""
        query = select(t.registry_secret.c.value).where(t.registry_secret.c.name == name)
        with self.database.read() as conn:
            value = conn.execute(query).scalar()
        if value is not None:
            return bytes(value)
        with self.database.write() as conn:
            insert_ignoring_conflict(
                conn,
                t.registry_secret,
                {"name": name, "value": create(), "created": datetime.now(UTC)},
                ["name"],
            )
            return bytes(conn.execute(query).scalar_one())

    def add_refresh_token(self, record: RefreshTokenRecord) -> None:
        subject = record.subject
        with self.database.write() as conn:
            conn.execute(
                insert(t.refresh_token).values(
                    token_hash=record.token_hash,
                    subject_kind=subject.kind.value,
                    subject_name=subject.name,
                    subject_id=subject.id,
                    audience=record.audience,
                    client_id=record.client_id,
                    created=record.created,
                )
            )

    def find_refresh_token(self, token_hash: str) -> RefreshTokenRecord | None:
        query = select(t.refresh_token).where(t.refresh_token.c.token_hash == token_hash)
        with self.database.read() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        subject = Principal(PrincipalKind(row.subject_kind), row.subject_name, row.subject_id)
        return RefreshTokenRecord(row.token_hash, subject, row.audience, row.client_id, row.created)

    def revoke_refresh_token(self, token_hash: str) -> bool:
        with self.database.write() as conn:
            result = conn.execute(
                delete(t.refresh_token).where(t.refresh_token.c.token_hash == token_hash)
            )
        return bool(result.rowcount)

    def revoke_refresh_tokens_of(self, subject_name: str) -> int:
        with self.database.write() as conn:
            result = conn.execute(
                delete(t.refresh_token).where(t.refresh_token.c.subject_name == subject_name)
            )
        return int(result.rowcount)
