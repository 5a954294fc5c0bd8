"""Alembic environment: runs against a passed-in connection or the configured URL."""

from __future__ import annotations

from alembic import context

from moorage.db.engine import create_database_engine
from moorage.db.tables import metadata

config = context.config


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    # Our engine factory, so that a new SQLite file starts out in WAL mode.
    engine = create_database_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run()
