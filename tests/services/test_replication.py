"""Replication copies blobs to every location; pulls then survive losing a copy."""

from __future__ import annotations

import hashlib

from moorage.domain.records import RepositoryReference
from moorage.model.sql import SqlRegistryModel
from moorage.services.registry import RegistryServices
from moorage.services.replication import ReplicationService
from moorage.storage import StorageLocations, keys


def _push(services: RegistryServices, repo: RepositoryReference, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    services.uploads.upload_whole(repo, digest, [data], len(data))
    return digest


def test_pushes_land_in_the_default_location_only(
    services: RegistryServices, repo: RepositoryReference, locations: StorageLocations
) -> None:
    digest = _push(services, repo, b"new blob")
    key = keys.blob_key(digest)
    assert locations.driver("primary").exists(key)
    assert not locations.driver("replica").exists(key)
    blob = services.blobs.model.get_repo_blob_by_digest(repo, digest, include_placements=True)
    assert blob is not None and blob.placements == ("primary",)


def test_replication_copies_verifies_and_records(
    services: RegistryServices,
    repo: RepositoryReference,
    locations: StorageLocations,
    model: SqlRegistryModel,
) -> None:
    digests = [_push(services, repo, f"blob {i}".encode() * 1000) for i in range(3)]
    worker = ReplicationService(model, locations)
    report = worker.run_once(batch=2)
    assert (report.copied, report.failed) == (3, 0)
    for digest in digests:
        blob = model.get_repo_blob_by_digest(repo, digest, include_placements=True)
        assert blob is not None and blob.placements == ("primary", "replica")
        replica = b"".join(locations.driver("replica").read(keys.blob_key(digest)))
        assert "sha256:" + hashlib.sha256(replica).hexdigest() == digest
    assert worker.run_once() == type(report)(0, 0)  # nothing left to do


def test_a_pull_survives_the_loss_of_the_preferred_copy(
    services: RegistryServices,
    repo: RepositoryReference,
    locations: StorageLocations,
    model: SqlRegistryModel,
) -> None:
    data = b"precious" * 4096
    digest = _push(services, repo, data)
    ReplicationService(model, locations).run_once()
    locations.driver("primary").delete(keys.blob_key(digest))
    content = services.blobs.content(repo, digest)
    assert content.storage is locations.driver("replica")
    assert b"".join(content.chunks()) == data


def test_a_corrupt_source_is_not_replicated(
    services: RegistryServices,
    repo: RepositoryReference,
    locations: StorageLocations,
    model: SqlRegistryModel,
) -> None:
    digest = _push(services, repo, b"original")
    key = keys.blob_key(digest)
    locations.driver("primary").put(key, [b"tampered"])
    report = ReplicationService(model, locations).run_once()
    assert (report.copied, report.failed) == (0, 1)
    assert not locations.driver("replica").exists(key)
    blob = model.get_repo_blob_by_digest(repo, digest, include_placements=True)
    assert blob is not None and blob.placements == ("primary",)
