"""The upload cleaner removes abandoned sessions and orphaned session data."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

from moorage.domain.records import RepositoryReference
from moorage.model.sql import SqlRegistryModel
from moorage.services.cleanup import UploadCleaner
from moorage.services.registry import RegistryServices
from moorage.storage import StorageLocations


def test_stale_sessions_and_their_data_go(
    services: RegistryServices,
    repo: RepositoryReference,
    locations: StorageLocations,
    model: SqlRegistryModel,
) -> None:
    old = services.uploads.start(repo)
    services.uploads.append(repo, old.upload_id, [b"partial data"])
    driver = locations.driver("primary")
    assert {sid for sid, _ in driver.list_uploads()} == {old.upload_id}
    # Nothing is old enough yet.
    assert UploadCleaner(model, locations, timedelta(hours=1)).run_once().sessions == 0
    report = UploadCleaner(model, locations, timedelta(seconds=-1)).run_once()
    assert (report.sessions, report.orphans) == (1, 0)
    assert model.lookup_blob_upload(repo, old.upload_id) is None
    assert list(driver.list_uploads()) == []


def test_orphaned_session_data_goes(
    locations: StorageLocations, model: SqlRegistryModel, tmp_path: Path
) -> None:
    driver = locations.driver("replica")
    session_id, metadata = driver.initiate_upload()
    driver.append_upload(session_id, metadata, 0, [b"left by a crash"])
    recent = UploadCleaner(model, locations, timedelta(hours=1)).run_once()
    assert recent.orphans == 0  # too young: it may still be in use
    session_file = tmp_path / "replica" / "_uploads" / session_id  # the conftest's layout
    past = time.time() - 3 * 86400
    os.utime(session_file, (past, past))
    report = UploadCleaner(model, locations, timedelta(days=1)).run_once()
    assert report.orphans == 1
    assert list(driver.list_uploads()) == []
