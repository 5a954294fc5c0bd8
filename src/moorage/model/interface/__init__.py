"""The model's protocols, narrow by concern, so that each service depends on what it uses.

- ``seed``: the seed's ``RegistryDataInterface`` (36 methods, Quay's names and meanings),
  composed of ``RepositoryLookup``, ``TagReads``, ``TagWrites``, ``ManifestReads``,
  ``ManifestLabels``, ``LegacyImages``, ``DerivedImages``, ``TorrentInfos``,
  ``RepositoryBlobs`` and ``BlobUploads``.
- ``administration``: ``RegistryAdministration``, what the registry needs around the seed:
  ``Namespaces``, ``RepositoryAdministration``, ``ManifestWrites``, ``BlobLinks``,
  ``Listings``, ``UploadCaps``, ``SecurityStatusWrites``.
- ``maintenance``: ``Maintenance``, for background jobs (replication, verify, cleanup, GC).
- ``accounts``: ``AccountsAndPermissions``: ``UserAccounts``, ``Teams``, ``Robots``,
  ``AppTokens``, ``RepositoryPermissions``.

``RegistryModel`` (the seed, administration and maintenance) is what ``app.build`` wires;
services take the narrowest protocol they use.
"""

from __future__ import annotations

from typing import Protocol

from moorage.model.interface.accounts import (
    AccountsAndPermissions,
    AppTokens,
    RepositoryPermissions,
    Robots,
    Teams,
    UserAccounts,
)
from moorage.model.interface.administration import (
    BlobLinks,
    Listings,
    ManifestWrites,
    Namespaces,
    RegistryAdministration,
    RepositoryAdministration,
    SecurityStatusWrites,
    UploadCaps,
)
from moorage.model.interface.maintenance import BlobDigestLocks, GarbageCollection, Maintenance
from moorage.model.interface.seed import (
    BlobUploads,
    DerivedImages,
    LegacyImages,
    ManifestLabels,
    ManifestReads,
    RegistryDataInterface,
    RepositoryBlobs,
    RepositoryLookup,
    TagReads,
    TagWrites,
    TorrentInfos,
)


class RegistryModel(
    RegistryDataInterface, RegistryAdministration, Maintenance, GarbageCollection, Protocol
):
    """The whole registry model (accounts apart): what ``app.build`` hands to the builders."""


__all__ = [
    "AccountsAndPermissions",
    "AppTokens",
    "BlobDigestLocks",
    "BlobLinks",
    "BlobUploads",
    "DerivedImages",
    "GarbageCollection",
    "LegacyImages",
    "Listings",
    "Maintenance",
    "ManifestLabels",
    "ManifestReads",
    "ManifestWrites",
    "Namespaces",
    "RegistryAdministration",
    "RegistryDataInterface",
    "RegistryModel",
    "RepositoryAdministration",
    "RepositoryBlobs",
    "RepositoryLookup",
    "RepositoryPermissions",
    "Robots",
    "SecurityStatusWrites",
    "TagReads",
    "TagWrites",
    "Teams",
    "TorrentInfos",
    "UploadCaps",
    "UserAccounts",
]
