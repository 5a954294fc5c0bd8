"""Applications built as the server builds them (`app.build`), on either database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from moorage.app import Application, build
from moorage.config import load_settings
from moorage.db.migrate import upgrade

# Parametrize a fixture with these and pass its `request` to `build_on`.
DATABASES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def build_on(request: pytest.FixtureRequest, data_dir: Path, **overrides: Any) -> Application:
    """An application on the database ``request.param`` names: SQLite in ``data_dir``, or a
    fresh, migrated PostgreSQL database."""
    if request.param == "postgres":
        url = request.getfixturevalue("fresh_postgres_url")
        upgrade(url)
        overrides["database_url"] = url
    return build(load_settings(data_dir=data_dir, **overrides))
