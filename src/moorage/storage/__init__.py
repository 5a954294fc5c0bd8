"""Blob storage: bytes by key, unaware of repositories.

Build keys with :mod:`moorage.storage.keys`; get a driver from :func:`create_driver`.
"""

from moorage.storage.driver import (
    InvalidKeyError,
    ObjectInfo,
    ObjectNotFoundError,
    StorageDriver,
    StorageError,
    UploadBusyError,
    UploadMetadata,
)
from moorage.storage.factory import create_driver
from moorage.storage.locations import StorageLocations, UnknownStorageLocationError

__all__ = [
    "InvalidKeyError",
    "ObjectInfo",
    "ObjectNotFoundError",
    "StorageDriver",
    "StorageError",
    "StorageLocations",
    "UnknownStorageLocationError",
    "UploadBusyError",
    "UploadMetadata",
    "create_driver",
]
