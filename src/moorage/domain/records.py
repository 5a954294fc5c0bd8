"""Frozen value records returned by the registry data model (never ORM rows).

Each record carries its private database id; equality and hashing use only the record
type and that id, so a label read back from the database equals the one created.
Optional parts ("extras") are present only when the caller asked for them: reading one
that was not loaded raises ``ExtraNotLoadedError`` instead of querying lazily.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum, StrEnum
from typing import Any, Final, TypeVar

from moorage.domain.errors import ExtraNotLoadedError
from moorage.domain.media_types import is_manifest_list


class _NotLoaded:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<not loaded>"


NOT_LOADED: Final = _NotLoaded()
T = TypeVar("T")


def _extra(value: T | _NotLoaded, name: str) -> T:
    if isinstance(value, _NotLoaded):
        raise ExtraNotLoadedError(f"{name} was not requested when this record was loaded")
    return value


class _Record:
    """Identity by (type, id)."""

    __slots__ = ()
    id: int

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and getattr(other, "id", None) == self.id

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.id))


class RepositoryKind(StrEnum):
    IMAGE = "image"
    APPLICATION = "application"


class RepositoryState(IntEnum):
    NORMAL = 0
    READ_ONLY = 1
    MIRROR = 2
    MARKED_FOR_DELETION = 3  # deleted through the API: renamed away, its content for GC


class Visibility(StrEnum):
    PUBLIC = "public"
    PRIVATE = "private"


class NamespaceKind(StrEnum):
    USER = "user"
    ORGANIZATION = "organization"


class SecurityScanStatus(StrEnum):
    SCANNED = "scanned"
    FAILED = "failed"
    QUEUED = "queued"
    UNSUPPORTED = "unsupported"


@dataclass(frozen=True, slots=True, eq=False)
class Namespace(_Record):
    id: int
    uuid: str
    name: str
    kind: NamespaceKind
    enabled: bool
    removed_tag_expiration_s: int
    email: str | None = None


@dataclass(frozen=True, slots=True, eq=False)
class RepositoryReference(_Record):
    id: int
    namespace_name: str
    name: str
    kind: RepositoryKind
    is_public: bool
    is_free_namespace: bool
    state: RepositoryState
    trust_enabled: bool = False
    # Read with the repository so one query answers "may this be used at all".
    namespace_enabled: bool = True

    @property
    def full_name(self) -> str:
        return f"{self.namespace_name}/{self.name}"


@dataclass(frozen=True, slots=True)
class RepositorySummary:
    """What a repository listing shows besides the name: alive tags, the bytes of the
    distinct manifests they point at (layers, as pushed), the latest tag change (ms)."""

    tag_count: int
    size_bytes: int
    last_modified_ms: int | None


@dataclass(frozen=True, slots=True, eq=False)
class Blob(_Record):
    """Global, content-addressed bytes. ``placements`` lists storage location names."""

    id: int
    uuid: str
    digest: str | None
    compressed_size: int | None
    uncompressed_size: int | None
    uploading: bool
    content_addressed: bool = True
    _placements: tuple[str, ...] | _NotLoaded = NOT_LOADED

    @property
    def placements(self) -> tuple[str, ...]:
        return _extra(self._placements, "placements")


@dataclass(frozen=True, slots=True, eq=False)
class LegacyImage(_Record):
    """A V1 image of the legacy chain; ``parents`` run from the direct parent to the root."""

    id: int
    docker_image_id: str
    created: datetime | None
    comment: str | None
    command: str | None
    image_size: int | None
    aggregate_size: int | None
    uploading: bool
    v1_metadata_string: str | None
    blob_digest: str | None
    _parents: tuple[LegacyImage, ...] | _NotLoaded = NOT_LOADED
    _blob: Blob | _NotLoaded = NOT_LOADED
    _tags: tuple[Tag, ...] | _NotLoaded = NOT_LOADED

    @property
    def parents(self) -> tuple[LegacyImage, ...]:
        return _extra(self._parents, "parents")

    @property
    def blob(self) -> Blob:
        return _extra(self._blob, "blob")

    @property
    def tags(self) -> tuple[Tag, ...]:
        return _extra(self._tags, "tags")


@dataclass(frozen=True, slots=True, eq=False)
class Manifest(_Record):
    id: int
    repository_id: int
    digest: str
    media_type: str
    internal_manifest_bytes: bytes
    artifact_type: str | None = None
    subject_digest: str | None = None
    layers_compressed_size: int | None = None
    _legacy_image: LegacyImage | _NotLoaded | None = NOT_LOADED

    @property
    def is_manifest_list(self) -> bool:
        return is_manifest_list(self.media_type)

    @property
    def legacy_image(self) -> LegacyImage | None:
        return _extra(self._legacy_image, "legacy_image")

    def get_parsed_manifest(self) -> Any:
        from moorage.domain.manifests import parse_manifest
        from moorage.domain.manifests.schema1 import STORED_MAX_SIGNATURES

        # Stored bytes were accepted under whatever limit held then: read them under the ceiling.
        return parse_manifest(
            self.internal_manifest_bytes, self.media_type, max_signatures=STORED_MAX_SIGNATURES
        )


@dataclass(frozen=True, slots=True, eq=False)
class Tag(_Record):
    """One version of a tag. Times are stored in milliseconds; ``*_ts`` give seconds."""

    id: int
    name: str
    repository: RepositoryReference
    reversion: bool
    lifetime_start_ms: int
    lifetime_end_ms: int | None
    manifest_id: int | None
    manifest_digest: str | None
    legacy_image_id: int | None = None
    _legacy_image: LegacyImage | _NotLoaded | None = NOT_LOADED

    @property
    def lifetime_start_ts(self) -> int:
        return self.lifetime_start_ms // 1000

    @property
    def lifetime_end_ts(self) -> int | None:
        return None if self.lifetime_end_ms is None else self.lifetime_end_ms // 1000

    @property
    def legacy_image(self) -> LegacyImage | None:
        return _extra(self._legacy_image, "legacy_image")

    def is_alive_at(self, now_ms: int) -> bool:
        return self.lifetime_end_ms is None or self.lifetime_end_ms > now_ms


@dataclass(frozen=True, slots=True, eq=False)
class Label(_Record):
    id: int
    uuid: str
    key: str
    value: str
    source_type_name: str
    media_type_name: str


@dataclass(frozen=True, slots=True, eq=False)
class BlobUpload(_Record):
    """An in-progress upload. Hash states are opaque raw bytes (never pickles)."""

    id: int
    upload_id: str
    repository_id: int
    location_name: str
    storage_metadata: dict[str, Any]
    byte_count: int
    chunk_count: int
    uncompressed_byte_count: int | None
    sha_state: bytes | None
    piece_sha_state: bytes | None
    piece_hashes: bytes | None
    created: datetime


@dataclass(frozen=True, slots=True, eq=False)
class DerivedImage(_Record):
    id: int
    unique_id: str
    verb: str
    varying_metadata: dict[str, Any] | None
    blob: Blob


@dataclass(frozen=True, slots=True)
class TorrentInfo:
    piece_length: int
    pieces: bytes


@dataclass(frozen=True, slots=True)
class LayerInfo:
    layer_id: str | None
    blob_digest: str
    compressed_size: int | None
    is_remote: bool = False
    urls: tuple[str, ...] = ()
    command: str | None = None
    comment: str | None = None
    author: str | None = None
    created_datetime: datetime | None = None
    media_type: str | None = None


@dataclass(frozen=True, slots=True)
class ManifestLayer:
    layer_info: LayerInfo
    blob: Blob | None = field(default=None)

    def estimated_size(self, multiplier: float) -> int | None:
        if self.blob is not None and self.blob.uncompressed_size is not None:
            return self.blob.uncompressed_size
        if self.layer_info.compressed_size is None:
            return None
        return int(self.layer_info.compressed_size * multiplier)
