"""The totals ``storage usage`` reports: placements per location (blob count, bytes) and
open upload sessions per location (count, bytes received)."""

from __future__ import annotations

import uuid

from tests.model.builders import push_blob

from moorage.domain.records import RepositoryReference
from moorage.model.sql import SqlRegistryModel


def test_placed_totals_count_every_placement_by_location(
    model: SqlRegistryModel, repo: RepositoryReference, other_repo: RepositoryReference
) -> None:
    assert model.placed_totals_by_location() == {}
    first = push_blob(model, repo, b"x" * 100)
    push_blob(model, repo, b"y" * 30)
    push_blob(model, other_repo, b"x" * 100)  # the same blob again: one row, one placement
    push_blob(model, repo, b"z" * 7, location="remote")
    assert model.placed_totals_by_location() == {"local": (2, 130), "remote": (1, 7)}
    model.add_blob_placement(first, "remote")
    assert model.placed_totals_by_location() == {"local": (2, 130), "remote": (2, 107)}
    assert model.remove_blob_placement(first, "local")
    assert model.placed_totals_by_location() == {"local": (1, 30), "remote": (2, 107)}


def test_open_upload_totals_sum_what_sessions_received(
    model: SqlRegistryModel, repo: RepositoryReference
) -> None:
    assert model.open_upload_totals_by_location() == {}
    started = []
    for location, size in (("local", 10), ("local", 5), ("remote", 0)):
        upload = model.create_blob_upload(repo, str(uuid.uuid4()), location, {})
        assert upload is not None
        if size:
            upload = model.update_blob_upload(upload, None, None, None, {}, size, 1, None)
            assert upload is not None
        started.append(upload)
    assert model.open_upload_totals_by_location() == {"local": (2, 15), "remote": (1, 0)}
    model.delete_blob_upload(started[0])
    assert model.open_upload_totals_by_location() == {"local": (1, 5), "remote": (1, 0)}
    push_blob(model, repo, b"committed")  # a finished upload is no longer open
    assert model.open_upload_totals_by_location() == {"local": (1, 5), "remote": (1, 0)}
