"""The model contract suite runs every test against SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from moorage.db.engine import Database, create_database_engine
from moorage.db.migrate import upgrade
from moorage.domain.records import RepositoryReference, Visibility
from moorage.model.sql import SqlRegistryModel

LOCATIONS = ("local", "remote")


class FakeClock:
    """Milliseconds that move only when told to (starts at the real time)."""

    def __init__(self) -> None:
        self.now = time.time_ns() // 1_000_000

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * 1000)


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: object) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/model.db"
    url: str = request.getfixturevalue("fresh_postgres_url")
    return url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    upgrade(database_url)  # the real Alembic migrations, not create_all
    engine = create_database_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def model(engine: Engine, clock: FakeClock) -> SqlRegistryModel:
    return SqlRegistryModel(Database(engine), clock=clock, locations=LOCATIONS)


@pytest.fixture
def repo(model: SqlRegistryModel) -> RepositoryReference:
    model.create_namespace("devtable")
    created = model.create_repository("devtable", "simple")
    assert created is not None
    return created


@pytest.fixture
def other_repo(model: SqlRegistryModel, repo: RepositoryReference) -> RepositoryReference:
    created = model.create_repository("devtable", "other", visibility=Visibility.PUBLIC)
    assert created is not None
    return created
