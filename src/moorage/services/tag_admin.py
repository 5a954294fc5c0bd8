"""Tags and labels as the REST API (and the admin CLI) manage them, over the seed's
methods: history, moves with compare-and-set, deletion, restores from the time machine,
expirations, and manifest labels."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from moorage.domain.digest import Digest
from moorage.domain.errors import (
    AccessDeniedError,
    ConflictError,
    DataModelError,
    InvalidDigestError,
    InvalidNameError,
    InvalidRequestError,
    NotFoundError,
)
from moorage.domain.labels import LabelSourceType, is_reserved_key
from moorage.domain.names import validate_tag_name
from moorage.domain.records import (
    Label,
    LegacyImage,
    Manifest,
    ManifestLayer,
    RepositoryReference,
    RepositoryState,
    SecurityScanStatus,
    Tag,
)
from moorage.model.interface import (
    LegacyImages,
    ManifestLabels,
    ManifestReads,
    TagReads,
    TagWrites,
)

MAX_PAGE = 100


class TagAdminStore(TagReads, TagWrites, ManifestReads, ManifestLabels, LegacyImages, Protocol):
    """Tag history and changes, manifests by digest, their labels and V1 images."""


@dataclass(frozen=True, slots=True)
class TagPage:
    tags: list[Tag]
    page: int
    has_additional: bool


@dataclass(frozen=True, slots=True)
class ManifestView:
    manifest: Manifest
    layers: list[ManifestLayer] | None  # None for an index (and unparsable manifests)


class TagAdmin:
    def __init__(self, model: TagAdminStore) -> None:
        self.model = model

    # -- tags ----------------------------------------------------------------------------

    def history(
        self,
        repository: RepositoryReference,
        *,
        page: int = 1,
        limit: int = 50,
        tag: str | None = None,
        active_only: bool = False,
    ) -> TagPage:
        """Tag versions newest first (one tag's with ``tag``; alive ones with
        ``active_only``); dead versions within the namespace's time-machine window."""
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidRequestError(f"limit is between 1 and {MAX_PAGE}", "limit")
        if page < 1:
            raise InvalidRequestError("page starts at 1", "page")
        tags, more = self.model.list_repository_tag_history(
            repository, page, limit, specific_tag_name=tag, active_tags_only=active_only
        )
        return TagPage(tags, page, more)

    def current(self, repository: RepositoryReference, tag: str) -> Tag:
        found = self.model.get_repo_tag(repository, _tag_name(tag))
        if found is None:
            raise NotFoundError(f"no tag {tag[:100]} in {repository.full_name}")
        return found

    def move(
        self,
        repository: RepositoryReference,
        tag: str,
        manifest_digest: str,
        *,
        expected_digest: str | None = None,
    ) -> Tag:
        """Point ``tag`` at a manifest of the repository (creating the tag). With
        ``expected_digest`` it is a compare-and-set: the tag must point there now ("" for a
        tag that must not exist yet), or ConflictError."""
        _writable(repository)
        name = _tag_name(tag)
        manifest = self.manifest(repository, manifest_digest)
        if expected_digest is not None:
            now = self.model.get_repo_tag(repository, name)
            if (now.manifest_digest if now else "") != expected_digest:
                raise ConflictError(f"tag {name} no longer points at {expected_digest[:100]}")
        moved = self.model.retarget_tag(repository, name, manifest)
        if moved is None:
            raise ConflictError(f"tag {name} changed while it was being moved")
        return moved

    def delete(self, repository: RepositoryReference, tag: str) -> Tag:
        _writable(repository)
        name = _tag_name(tag)
        try:
            return self.model.delete_tag(repository, name)
        except DataModelError:
            raise NotFoundError(f"no tag {name} in {repository.full_name}") from None

    def restore(self, repository: RepositoryReference, tag: str, manifest_digest: str) -> Tag:
        """Put ``tag`` back on a manifest it pointed at before, within the namespace's
        time-machine window (Quay's revert)."""
        _writable(repository)
        name = _tag_name(tag)
        manifest = self.manifest(repository, manifest_digest)
        restored = self.model.retarget_tag(repository, name, manifest, is_reversion=True)
        if restored is None:
            raise NotFoundError(
                f"{name} never pointed at {manifest.digest} within the time machine's window"
            )
        return restored

    def set_expiration(
        self, repository: RepositoryReference, tag: str, expiration: datetime | None
    ) -> Tag:
        """When the tag expires (None: never), clamped to [1 hour, 104 weeks] after the
        tag's lifetime start, as Quay clamps it."""
        _writable(repository)
        current = self.current(repository, tag)
        _, ok = self.model.change_repository_tag_expiration(current, expiration)
        if not ok:
            raise ConflictError(f"tag {current.name} changed while its expiry was being set")
        return self.current(repository, tag)

    def images(
        self, repository: RepositoryReference, tag: str, *, owned: bool = False
    ) -> list[LegacyImage]:
        """The tag's V1 image chain, leaf first then its parents to the root (Quay's
        ``tag/<tag>/images``); with ``owned``, only the images no other alive tag uses.
        Empty for a tag without a legacy image (manifest lists, artifacts)."""
        current = self.model.get_repo_tag(repository, _tag_name(tag), include_legacy_image=True)
        if current is None:
            raise NotFoundError(f"no tag {tag[:100]} in {repository.full_name}")
        if owned:
            return self.model.get_legacy_images_owned_by_tag(current) or []
        if current.legacy_image is None:
            return []
        leaf = self.model.get_legacy_image(
            repository, current.legacy_image.docker_image_id, include_parents=True
        )
        return [] if leaf is None else [leaf, *leaf.parents]

    # -- manifests -------------------------------------------------------------------------

    def manifest(
        self, repository: RepositoryReference, digest: str, *, allow_dead: bool = True
    ) -> Manifest:
        """A manifest stored in the repository, tagged now or only in tag history (the API
        moves, restores and labels those too); ``allow_dead=False``: reachable ones only."""
        try:
            Digest.parse(digest)
        except InvalidDigestError:
            raise InvalidRequestError(f"not a digest: {digest[:100]}", "manifest_digest") from None
        manifest = self.model.lookup_manifest_by_digest(repository, digest, allow_dead=allow_dead)
        if manifest is None:
            raise NotFoundError(f"no manifest {digest[:100]} in {repository.full_name}")
        return manifest

    def manifest_view(
        self, repository: RepositoryReference, digest: str, *, include_placements: bool = False
    ) -> ManifestView:
        manifest = self.manifest(repository, digest)
        layers = None
        if not manifest.is_manifest_list:
            layers = self.model.list_manifest_layers(manifest, include_placements)
        return ManifestView(manifest, layers)

    def security_status(self, repository: RepositoryReference, digest: str) -> SecurityScanStatus:
        manifest = self.manifest(repository, digest)
        status = self.model.get_security_status(manifest)
        if status is None:
            raise NotFoundError(f"no manifest {digest[:100]} in {repository.full_name}")
        return status

    # -- labels ----------------------------------------------------------------------------

    def labels(
        self, repository: RepositoryReference, digest: str, prefix: str | None = None
    ) -> list[Label]:
        return self.model.list_manifest_labels(self.manifest(repository, digest), prefix)

    def label(self, repository: RepositoryReference, digest: str, label_id: str) -> Label:
        found = self.model.get_manifest_label(self.manifest(repository, digest), label_id)
        if found is None:
            raise NotFoundError(f"no label {label_id[:100]} on {digest[:100]}")
        return found

    def add_label(
        self,
        repository: RepositoryReference,
        digest: str,
        key: str,
        value: str,
        media_type: str | None = None,
    ) -> Label:
        """An ``api`` label; keys under reserved prefixes (``com.docker.``, ``quay``, ...)
        are refused, the media type is inferred from the value when not given."""
        _writable(repository)
        if is_reserved_key(key.lower()):
            raise InvalidRequestError(f"label key {key[:100]} uses a reserved prefix", "key")
        manifest = self.manifest(repository, digest)
        try:
            label = self.model.create_manifest_label(
                manifest, key, value, LabelSourceType.API.value, media_type
            )
        except DataModelError as refused:
            raise InvalidRequestError(str(refused), "key") from None
        if label is None:
            raise NotFoundError(f"no manifest {digest[:100]} in {repository.full_name}")
        return label

    def delete_label(self, repository: RepositoryReference, digest: str, label_id: str) -> Label:
        """Only labels added through the API go; those from the manifest stay (400)."""
        _writable(repository)
        manifest = self.manifest(repository, digest)
        try:
            deleted = self.model.delete_manifest_label(manifest, label_id)
        except DataModelError as refused:  # a label from the manifest: read-only
            raise AccessDeniedError(str(refused)) from None
        if deleted is None:
            raise NotFoundError(f"no label {label_id[:100]} on {digest[:100]}")
        return deleted


def _tag_name(tag: str) -> str:
    try:
        return validate_tag_name(tag)
    except InvalidNameError as refused:
        raise InvalidRequestError(str(refused), "tag") from None


def _writable(repository: RepositoryReference) -> None:
    if repository.state is not RepositoryState.NORMAL:
        raise InvalidRequestError(f"{repository.full_name} is read-only", "repository")
