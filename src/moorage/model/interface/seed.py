"""The seed's ``RegistryDataInterface`` (Quay's, typed): its 36 methods keep the seed's names
and meanings, grouped by concern so that a service can depend on the part it uses. The
records are frozen values from ``moorage.domain.records``. "Alive" means ``lifetime_end`` is
NULL or later than now, and the tag is not hidden.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from moorage.domain.records import (
    Blob,
    BlobUpload,
    DerivedImage,
    Label,
    LegacyImage,
    Manifest,
    ManifestLayer,
    RepositoryKind,
    RepositoryReference,
    SecurityScanStatus,
    Tag,
    TorrentInfo,
)


class RepositoryLookup(Protocol):
    """Finding a repository, and whether its namespace is enabled."""

    def lookup_repository(
        self, namespace_name: str, repo_name: str, kind_filter: RepositoryKind | None = None
    ) -> RepositoryReference | None:
        """The repository by namespace and name; another kind than ``kind_filter`` counts
        as absent. Neither the namespace's enabled flag nor permissions are checked."""
        ...

    def is_namespace_enabled(self, namespace_name: str) -> bool:
        """True when the namespace exists and is enabled."""
        ...


class TagReads(Protocol):
    """Alive tags, their history and their manifests (V1 tags backfilled on demand)."""

    def find_matching_tag(
        self, repository_ref: RepositoryReference, tag_names: Sequence[str]
    ) -> Tag | None:
        """The alive tag among ``tag_names`` that started most recently, or None.

        An empty ``tag_names`` is a programming error (ValueError)."""
        ...

    def get_most_recent_tag(self, repository_ref: RepositoryReference) -> Tag | None:
        """The alive tag with the latest lifetime start, or None for an empty repository."""
        ...

    def get_repo_tag(
        self,
        repository_ref: RepositoryReference,
        tag_name: str,
        include_legacy_image: bool = False,
    ) -> Tag | None:
        """The alive tag with this name, or None."""
        ...

    def list_repository_tags(
        self, repository_ref: RepositoryReference, include_legacy_images: bool = False
    ) -> list[Tag]:
        """Every alive tag of the repository, ordered by id. Heavy: not for paging."""
        ...

    def list_repository_tag_history(
        self,
        repository_ref: RepositoryReference,
        page: int = 1,
        size: int = 100,
        specific_tag_name: str | None = None,
        active_tags_only: bool = False,
    ) -> tuple[list[Tag], bool]:
        """Visible tag versions, alive and dead (within the namespace's time-machine
        window), newest start first then name; returns (page of tags, has_more)."""
        ...

    def get_manifest_for_tag(
        self, tag: Tag, backfill_if_necessary: bool = False
    ) -> Manifest | None:
        """The manifest of this tag version. A V1 tag has none until backfilled; with
        ``backfill_if_necessary`` one is generated (see ``backfill_manifest_for_tag``)."""
        ...

    def backfill_manifest_for_tag(self, tag: Tag) -> Manifest | None:
        """Returns the tag's manifest, generating and storing a signed schema 1 manifest
        from its legacy image chain when it has none. None if impossible."""
        ...

    def get_legacy_images_owned_by_tag(self, tag: Tag) -> list[LegacyImage] | None:
        """Legacy images (the tag's image and ancestors) that no other alive tag of the
        repository uses. None if the tag is gone or has no legacy image."""
        ...


class TagWrites(Protocol):
    """Moving, reverting, deleting and expiring tags; every change appends to history."""

    def retarget_tag(
        self,
        repository_ref: RepositoryReference,
        tag_name: str,
        manifest_or_legacy_image: Manifest | LegacyImage,
        is_reversion: bool = False,
    ) -> Tag | None:
        """Closes the alive version of the tag now and starts a new one on the target.
        None if the target is not in this repository, if a reversion's target was never
        (within the time-machine window) under this name, or if the tag changed
        concurrently (compare-and-set: of two simultaneous movers exactly one wins)."""
        ...

    def delete_tag(self, repository_ref: RepositoryReference, tag_name: str) -> Tag:
        """Ends the alive version now and returns it (history keeps it). Raises
        DataModelError if there is no alive tag of that name or it changed concurrently."""
        ...

    def change_repository_tag_expiration(
        self, tag: Tag, expiration_date: datetime | None
    ) -> tuple[int | None, bool]:
        """Sets when the tag expires (None: never), clamped to [1 h, 104 w] after the
        tag's lifetime start. Returns (previous end in seconds, ok); an unchanged end is
        ``(None, True)``; a concurrent change or a missing tag gives ``ok=False``."""
        ...


class ManifestReads(Protocol):
    """Manifests by digest, their layers and their scan status."""

    def lookup_manifest_by_digest(
        self,
        repository_ref: RepositoryReference,
        manifest_digest: str,
        allow_dead: bool = False,
        include_legacy_image: bool = False,
    ) -> Manifest | None:
        """The manifest with this digest in this repository, if an alive tag (hidden temp
        tags included) or an alive tagged list reaches it; any stored one with
        ``allow_dead``. ``include_legacy_image`` attaches the leaf image with parents."""
        ...

    def list_manifest_layers(
        self, manifest: Manifest, include_placements: bool = False
    ) -> list[ManifestLayer] | None:
        """Layers base → leaf with their blobs; None for lists, unparsable manifests or a
        missing blob. Remote (foreign, ``urls``) layers have no blob."""
        ...

    def get_security_status(
        self, manifest_or_legacy_image: Manifest | LegacyImage
    ) -> SecurityScanStatus | None:
        """Scan status of the legacy image (a manifest's leaf image); manifests without
        one (lists, artifacts) are UNSUPPORTED; None if the row is gone."""
        ...


class ManifestLabels(Protocol):
    """Labels on manifests: from the image config (read-only) or added through the API."""

    def create_manifest_label(
        self,
        manifest: Manifest,
        key: str,
        value: str,
        source_type_name: str,
        media_type_name: str | None = None,
    ) -> Label | None:
        """Adds a label (None if the manifest is gone). Raises InvalidLabelKeyError or
        InvalidMediaTypeError. ``quay.expires-after`` sets every alive tag on the
        manifest to expire at its lifetime start plus the duration."""
        ...

    def list_manifest_labels(
        self, manifest: Manifest, key_prefix: str | None = None
    ) -> list[Label]:
        """Labels of the manifest; ``key_prefix`` filters case-insensitively, literally."""
        ...

    def get_manifest_label(self, manifest: Manifest, label_uuid: str) -> Label | None:
        """The label with this uuid if it is attached to this manifest."""
        ...

    def delete_manifest_label(self, manifest: Manifest, label_uuid: str) -> Label | None:
        """Deletes and returns the label, None if not on this manifest. Only mutable
        (``api``) labels may go: others raise ImmutableLabelError."""
        ...


class LegacyImages(Protocol):
    """V1 images (schema 1-era chains) of a repository."""

    def get_legacy_images(self, repository_ref: RepositoryReference) -> list[LegacyImage] | None:
        """Every legacy image of the repository with parents and alive tags loaded;
        None if the repository is gone."""
        ...

    def get_legacy_image(
        self,
        repository_ref: RepositoryReference,
        docker_image_id: str,
        include_parents: bool = False,
        include_blob: bool = False,
    ) -> LegacyImage | None:
        """The legacy image by V1 id in this repository; parents run direct parent → root,
        the blob comes with its placements."""
        ...


class DerivedImages(Protocol):
    """Derived images (squashed downloads) and their signatures."""

    def lookup_derived_image(
        self,
        manifest: Manifest,
        verb: str,
        varying_metadata: dict[str, Any] | None = None,
        include_placements: bool = False,
    ) -> DerivedImage | None:
        """The derived image keyed by (leaf legacy image, verb, varying metadata)."""
        ...

    def lookup_or_create_derived_image(
        self,
        manifest: Manifest,
        verb: str,
        storage_location: str,
        varying_metadata: dict[str, Any] | None = None,
        include_placements: bool = False,
    ) -> DerivedImage | None:
        """As ``lookup_derived_image``, creating an uploading, unsized one if absent."""
        ...

    def get_derived_image_signature(
        self, derived_image: DerivedImage, signer_name: str
    ) -> str | None:
        """The signature stored for this signer, or None."""
        ...

    def set_derived_image_signature(
        self, derived_image: DerivedImage, signer_name: str, signature: str
    ) -> None:
        """Stores (or replaces) the signature of a known signer kind."""
        ...

    def delete_derived_image(self, derived_image: DerivedImage) -> None:
        """Deletes the derived image's storage row and all hanging off it."""
        ...

    def set_derived_image_size(
        self, derived_image: DerivedImage, compressed_size: int
    ) -> DerivedImage | None:
        """Records the size and marks the derived image complete (not uploading)."""
        ...


class TorrentInfos(Protocol):
    """BitTorrent piece hashes recorded for blobs."""

    def get_torrent_info(self, blob: Blob) -> TorrentInfo | None:
        """The first torrent info recorded for the blob, or None."""
        ...

    def set_torrent_info(self, blob: Blob, piece_length: int, pieces: bytes) -> TorrentInfo:
        """Records torrent info; the first write per (blob, piece length) wins."""
        ...


class RepositoryBlobs(Protocol):
    """Blobs as one repository sees them."""

    def get_repo_blob_by_digest(
        self,
        repository_ref: RepositoryReference,
        blob_digest: str,
        include_placements: bool = False,
    ) -> Blob | None:
        """A complete blob with this digest that the repository can see (through a
        manifest, a legacy image or an unexpired upload/mount link)."""
        ...


class BlobUploads(Protocol):
    """Resumable upload sessions and their commit into a blob."""

    def create_blob_upload(
        self,
        repository_ref: RepositoryReference,
        upload_id: str,
        location_name: str,
        storage_metadata: dict[str, Any],
        *,
        client: str | None = None,
    ) -> BlobUpload | None:
        """Starts an upload session; None if the repository is gone. ``client`` (our
        addition) records who opened it, for :meth:`open_upload_counts`."""
        ...

    def lookup_blob_upload(
        self, repository_ref: RepositoryReference, blob_upload_id: str
    ) -> BlobUpload | None:
        """The upload session by id within this repository (Quay ignored the repository;
        we do not: an id from another repository is not found)."""
        ...

    def update_blob_upload(
        self,
        blob_upload: BlobUpload,
        uncompressed_byte_count: int | None,
        piece_hashes: bytes | None,
        piece_sha_state: bytes | None,
        storage_metadata: dict[str, Any],
        byte_count: int,
        chunk_count: int,
        sha_state: bytes | None,
    ) -> BlobUpload | None:
        """Overwrites the session's progress if it is still the one ``blob_upload`` holds
        (same byte and chunk counts: a compare-and-set, our addition); returns the fresh
        record, None if the session is gone or another request changed it meanwhile."""
        ...

    def delete_blob_upload(self, blob_upload: BlobUpload) -> None:
        """Deletes the session record if present."""
        ...

    def commit_blob_upload(
        self,
        blob_upload: BlobUpload,
        blob_digest_str: str,
        blob_expiration_seconds: int,
        *,
        torrent_info: TorrentInfo | None = None,
    ) -> Blob | None:
        """Turns the session into a blob (deduplicated by digest, placed at the upload's
        location) linked to the repository for ``blob_expiration_seconds``; deletes the
        session. None if the session is gone. ``torrent_info`` (our addition) is recorded
        in the same transaction, as ``set_torrent_info`` would (first write wins)."""
        ...


class RegistryDataInterface(
    RepositoryLookup,
    TagReads,
    TagWrites,
    ManifestReads,
    ManifestLabels,
    LegacyImages,
    DerivedImages,
    TorrentInfos,
    RepositoryBlobs,
    BlobUploads,
    Protocol,
):
    """The seed interface: the 36 methods, all of the protocols above."""
