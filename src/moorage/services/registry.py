"""The bundle of registry services handed to the HTTP layer and workers."""

from __future__ import annotations

from dataclasses import dataclass

from moorage.model.interface import RegistryModel
from moorage.services.accounts import AccountService
from moorage.services.blobs import BlobService
from moorage.services.listing import ListingService
from moorage.services.manifests import ManifestService, ManifestSettings
from moorage.services.repositories import RepositoryResolver
from moorage.services.repository_admin import RepositoryAdmin
from moorage.services.tag_admin import TagAdmin
from moorage.services.torrents import TorrentService
from moorage.services.uploads import UploadService, UploadSettings
from moorage.storage import StorageLocations


@dataclass(frozen=True, slots=True)
class AdminServices:
    """What the REST API and the admin CLI manage: repositories, tags and labels, accounts
    (namespaces enabled or not)."""

    resolver: RepositoryResolver
    repositories: RepositoryAdmin
    tags: TagAdmin
    accounts: AccountService


@dataclass(frozen=True, slots=True)
class RegistryServices:
    repositories: RepositoryResolver
    uploads: UploadService
    blobs: BlobService
    manifests: ManifestService
    listing: ListingService
    torrents: TorrentService | None = None  # None: torrents off (torrents.enabled)


def build_services(
    model: RegistryModel,
    locations: StorageLocations,
    *,
    uploads: UploadSettings | None = None,
    manifests: ManifestSettings | None = None,
    page_cap: int = 1000,
    library_support: bool = True,
) -> RegistryServices:
    """``library_support``: a one-component name is ``library/<name>``, both in URLs (the
    resolver) and in schema 1 manifests (the manifest checks): one setting for both."""
    upload_settings = uploads or UploadSettings()
    upload_service = UploadService(model, locations, upload_settings)
    blobs = BlobService(model, locations, link_expiration_s=upload_settings.blob_link_expiration_s)
    return RegistryServices(
        repositories=RepositoryResolver(model, library_support=library_support),
        uploads=upload_service,
        blobs=blobs,
        manifests=ManifestService(
            model,
            blobs,
            upload_service,
            manifests or ManifestSettings(),
            library_support=library_support,
        ),
        listing=ListingService(model, page_cap=page_cap),
    )
