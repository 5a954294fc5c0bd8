"""The SQL implementation of the registry data model (SQLite and PostgreSQL)."""

from __future__ import annotations

from moorage.model.sql.accounts import AccountsMixin
from moorage.model.sql.backfill import BackfillMixin
from moorage.model.sql.blobs import BlobMixin
from moorage.model.sql.derived import DerivedImageMixin
from moorage.model.sql.gc import GcMixin
from moorage.model.sql.labels import LabelMixin
from moorage.model.sql.layers import LayerMixin
from moorage.model.sql.listing import ListingMixin
from moorage.model.sql.maintenance import MaintenanceMixin
from moorage.model.sql.repositories import RepositoryMixin
from moorage.model.sql.tags import TagMixin
from moorage.model.sql.uploads import UploadMixin


class SqlRegistryModel(
    RepositoryMixin,
    TagMixin,
    BackfillMixin,
    LayerMixin,
    LabelMixin,
    DerivedImageMixin,
    BlobMixin,
    UploadMixin,
    ListingMixin,
    MaintenanceMixin,
    GcMixin,
    AccountsMixin,
):
    """``RegistryModel`` over SQLAlchemy; construct with a ``Database`` (see SqlModelBase)."""


__all__ = ["SqlRegistryModel"]
