"""Services over a real SQLite model and two filesystem storage locations."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from moorage.db.engine import Database, create_database_engine
from moorage.db.migrate import upgrade
from moorage.domain.records import RepositoryReference
from moorage.model.sql import SqlRegistryModel
from moorage.services.registry import RegistryServices, build_services
from moorage.storage import StorageLocations, create_driver


@pytest.fixture
def model(tmp_path: Path) -> Iterator[SqlRegistryModel]:
    url = f"sqlite:///{tmp_path}/services.db"
    upgrade(url)
    engine = create_database_engine(url)
    yield SqlRegistryModel(Database(engine), locations=("primary", "replica"))
    engine.dispose()


@pytest.fixture
def locations(tmp_path: Path) -> StorageLocations:
    return StorageLocations(
        {
            "primary": create_driver("filesystem", root=tmp_path / "primary"),
            "replica": create_driver("filesystem", root=tmp_path / "replica"),
        },
        "primary",
    )


@pytest.fixture
def services(model: SqlRegistryModel, locations: StorageLocations) -> RegistryServices:
    return build_services(model, locations)


@pytest.fixture
def repo(services: RegistryServices) -> RepositoryReference:
    return services.repositories.for_write("acme/app")
