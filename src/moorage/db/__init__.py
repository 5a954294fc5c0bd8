"""Database layer: SQLAlchemy tables, engine/session setup and Alembic migrations."""
