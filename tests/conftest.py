"""Shared fixtures.

PostgreSQL:
  ``postgres_url`` (session): URL of a ``moorage_test`` database. Uses ``MOORAGE_TEST_POSTGRES_URL``
  when set; otherwise starts a throw-away cluster (see ``tests/support/pgserver.py``) and stops it
  at the end. Without PostgreSQL binaries the test is skipped, or failed when ``CI`` is set.
  ``fresh_postgres_url`` (function): a brand-new empty database on that server, dropped afterwards.

SQLite:
  ``fresh_sqlite_url`` (function): URL of a not-yet-existing SQLite file in the test's tmp dir.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from support import pgserver

POSTGRES_URL_ENV = "MOORAGE_TEST_POSTGRES_URL"
OPEN_REGISTRY_ENV = "MOORAGE_AUTH__ENABLED"


@pytest.fixture(autouse=True)
def _no_developer_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests see default settings, whatever MOORAGE_* variables the developer exported."""
    for key in list(os.environ):
        if key.startswith("MOORAGE_") and not key.startswith("MOORAGE_TEST_"):
            monkeypatch.delenv(key)
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    # The protocol suites speak to an open registry; the access suites turn auth on.
    monkeypatch.setenv(OPEN_REGISTRY_ENV, "false")


def _no_postgres(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so PostgreSQL tests must run)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    given = os.environ.get(POSTGRES_URL_ENV)
    if given:
        yield given
        return
    bin_dir = pgserver.find_bin_dir()
    if bin_dir is None:
        _no_postgres(
            "PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or in "
            f"/usr/lib/postgresql/*/bin; install them or set {POSTGRES_URL_ENV}"
        )
    assert bin_dir is not None
    cluster = pgserver.start_cluster(bin_dir)
    try:
        yield pgserver.create_database(cluster.admin_url, pgserver.TEST_DATABASE)
    finally:
        cluster.stop()


@pytest.fixture
def fresh_postgres_url(postgres_url: str) -> Iterator[str]:
    url = pgserver.create_database(postgres_url)
    name = make_url(url).database
    assert name is not None
    try:
        yield url
    finally:
        pgserver.drop_database(postgres_url, name)


@pytest.fixture
def fresh_sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'moorage.db'}"
