"""ManifestService over a real model and storage: the shared empty layer (issue 11)."""

from __future__ import annotations

from moorage.domain.digest import EMPTY_LAYER_BYTES, EMPTY_LAYER_DIGEST
from moorage.domain.records import RepositoryReference
from moorage.model.sql import SqlRegistryModel
from moorage.services.registry import RegistryServices
from moorage.storage import keys


def test_the_empty_layer_is_stored_again_when_no_location_holds_it(
    services: RegistryServices, model: SqlRegistryModel, repo: RepositoryReference
) -> None:
    manifests = services.manifests
    manifests.ensure_empty_layer(repo)
    blob = model.get_repo_blob_by_digest(repo, EMPTY_LAYER_DIGEST, include_placements=True)
    assert blob is not None and blob.placements == ("primary",)
    # What a quarantine leaves: the copy moved away, the placement gone.
    driver = services.blobs.locations.driver("primary")
    driver.delete(keys.blob_key(EMPTY_LAYER_DIGEST))
    assert model.remove_blob_placement(blob, "primary")
    manifests.ensure_empty_layer(repo)
    again = model.get_repo_blob_by_digest(repo, EMPTY_LAYER_DIGEST, include_placements=True)
    assert again is not None and again.placements == ("primary",)
    content = services.blobs.content(repo, EMPTY_LAYER_DIGEST)
    assert b"".join(content.chunks()) == EMPTY_LAYER_BYTES
