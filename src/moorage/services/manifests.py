"""Manifests: pushing (validate, store, link, tag), pulling with content negotiation, deleting."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from moorage.domain.digest import EMPTY_LAYER_BYTES, EMPTY_LAYER_DIGEST, Digest
from moorage.domain.errors import (
    BlobNotFoundError,
    BlobUnknownError,
    DataModelError,
    DigestMismatchError,
    InvalidDigestError,
    InvalidNameError,
    ManifestError,
    ManifestMediaTypeError,
    ManifestNotFoundError,
    ManifestTooLargeError,
    NameMismatchError,
    TagInvalidError,
)
from moorage.domain.manifests import (
    ParsedManifest,
    V1Entry,
    legacy_chain_from_config,
    parse_manifest,
    schema1_from_image,
)
from moorage.domain.media_types import (
    DOCKER_SCHEMA1_MANIFEST,
    DOCKER_SCHEMA1_SIGNED_MANIFEST,
    IMAGE_CONFIG_TYPES,
    MANIFEST_TYPES,
    SCHEMA1_TYPES,
)
from moorage.domain.names import split_full_name, validate_tag_name
from moorage.domain.records import Manifest, RepositoryReference, Tag
from moorage.model.interface import RegistryModel
from moorage.services.blobs import BlobService
from moorage.services.uploads import UploadService

APPLICATION_JSON = "application/json"
LEGACY_ACCEPT = SCHEMA1_TYPES | {APPLICATION_JSON}
MAX_CONFIG_BYTES = 16 * 1024 * 1024
RETARGET_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class ManifestSettings:
    size_limit: int = 4 * 1024 * 1024
    temp_tag_expiration_s: int = 300  # keeps a manifest pushed by digest alive until tagged


@dataclass(frozen=True, slots=True)
class ManifestBody:
    content: bytes
    media_type: str
    digest: str


@dataclass(frozen=True, slots=True)
class PushResult:
    digest: str
    subject_digest: str | None
    tags: tuple[str, ...] = ()  # applied from ?tag= parameters


def is_digest_reference(reference: str) -> bool:
    return ":" in reference


def declared_media_type(content_type: str | None, body: bytes) -> str:
    """The manifest type from ``Content-Type`` (parameters dropped), sniffing the body when
    it is absent or plain JSON: ``schemaVersion: 1`` is schema 1, else its ``mediaType``."""
    declared = (content_type or "").split(";", 1)[0].strip().lower()
    if declared and declared != APPLICATION_JSON:
        if declared not in MANIFEST_TYPES:
            raise ManifestMediaTypeError(f"unsupported manifest media type {declared!r}")
        return declared
    try:
        fields = json.loads(body)
    except ValueError:
        raise ManifestError("manifest is not valid JSON") from None
    if not isinstance(fields, dict):
        raise ManifestError("manifest is not a JSON object")
    if fields.get("schemaVersion") == 1:
        return DOCKER_SCHEMA1_SIGNED_MANIFEST if "signatures" in fields else DOCKER_SCHEMA1_MANIFEST
    sniffed = fields.get("mediaType")
    if not isinstance(sniffed, str) or sniffed not in MANIFEST_TYPES:
        raise ManifestMediaTypeError("cannot tell the manifest media type")
    return sniffed


class ManifestService:
    def __init__(
        self,
        model: RegistryModel,
        blobs: BlobService,
        uploads: UploadService,
        settings: ManifestSettings,
        *,
        library_support: bool = True,
    ) -> None:
        self.model, self.blobs, self.uploads, self.settings = model, blobs, uploads, settings
        self.library_support = library_support  # a schema 1 ``name`` of ``alpine`` is library/

    # -- push ----------------------------------------------------------------------------

    def push(
        self,
        repository: RepositoryReference,
        reference: str,
        body: bytes,
        content_type: str | None,
        extra_tags: Sequence[str] = (),
    ) -> PushResult:
        """Stores the manifest and, for a tag reference, moves the tag. ``extra_tags`` (the
        distribution-spec's ``?tag=`` on a push by digest) are all validated before anything
        is stored, then each is moved onto the manifest."""
        if len(body) > self.settings.size_limit:
            raise ManifestTooLargeError(f"manifest is larger than {self.settings.size_limit} bytes")
        if not body:
            raise ManifestError("manifest body is empty")
        by_digest = is_digest_reference(reference)
        algorithm = Digest.parse(reference).algorithm if by_digest else "sha256"
        if not by_digest:
            _check_tag(reference)
        if extra_tags and not by_digest:
            raise TagInvalidError("tag parameters are only for a push by digest")
        for tag in extra_tags:
            _check_tag(tag)
        parsed = parse_manifest(body, declared_media_type(content_type, body), algorithm)
        if by_digest and parsed.digest != reference:
            raise DigestMismatchError(f"manifest digest {parsed.digest} does not match {reference}")
        self._check_schema1(repository, parsed, None if by_digest else reference)
        manifest = self._store(repository, parsed, temp_tag=by_digest)
        for tag in [*extra_tags] if by_digest else [reference]:
            self._retarget(repository, tag, manifest)
        return PushResult(
            parsed.digest,
            None if parsed.subject is None else parsed.subject.digest,
            tuple(dict.fromkeys(extra_tags)),
        )

    def _check_schema1(
        self, repository: RepositoryReference, parsed: ParsedManifest, tag: str | None
    ) -> None:
        if parsed.schema1 is None:
            return
        try:
            named = split_full_name(parsed.schema1.name, library=self.library_support)
        except InvalidNameError:
            named = None
        if named != (repository.namespace_name, repository.name):
            raise NameMismatchError(
                f"manifest names {parsed.schema1.name!r}, not {repository.full_name!r}"
            )
        if tag is not None and parsed.schema1.tag != tag:
            raise TagInvalidError(f"manifest tag {parsed.schema1.tag!r} does not match {tag!r}")

    def _store(
        self, repository: RepositoryReference, parsed: ParsedManifest, *, temp_tag: bool
    ) -> Manifest:
        existing = self.model.lookup_manifest_by_digest(repository, parsed.digest, allow_dead=True)
        chain: list[V1Entry] | None = None
        labels: dict[str, str] = {}
        config = parsed.config
        if existing is None and config is not None and config.media_type in IMAGE_CONFIG_TYPES:
            config_bytes = self._config_bytes(repository, config.digest)
            labels = _config_labels(config_bytes)
            try:
                chain = list(legacy_chain_from_config(config_bytes, parsed.layers))
            except ManifestError:
                chain = None  # history and layers disagree: no V1 view of this image
            if chain and any(entry.blob_digest == EMPTY_LAYER_DIGEST for entry in chain):
                self.ensure_empty_layer(repository)
        manifest = self.model.create_manifest(
            repository,
            parsed.raw,
            parsed.media_type,
            legacy_chain=chain,
            temp_tag_expiration_s=self.settings.temp_tag_expiration_s if temp_tag else None,
            digest_algorithm=parsed.digest.split(":", 1)[0],
            parsed=parsed,
        )
        for key, value in labels.items():
            try:
                self.model.create_manifest_label(manifest, key, value, "manifest")
            except DataModelError:
                continue  # an empty key: Docker's LABEL allows little else that we refuse
        return manifest

    def _config_bytes(self, repository: RepositoryReference, digest: str) -> bytes:
        try:
            return self.blobs.read_small(repository, digest, MAX_CONFIG_BYTES)
        except BlobNotFoundError:
            raise BlobUnknownError(digest) from None

    def ensure_empty_layer(self, repository: RepositoryReference) -> None:
        """The gzipped empty tar that V1 views use for empty history entries: stored once,
        visible in every repository."""
        if self.model.get_repo_blob_by_digest(repository, EMPTY_LAYER_DIGEST) is not None:
            return
        self.uploads.upload_whole(
            repository, EMPTY_LAYER_DIGEST, [EMPTY_LAYER_BYTES], len(EMPTY_LAYER_BYTES)
        )

    def _retarget(self, repository: RepositoryReference, tag_name: str, manifest: Manifest) -> Tag:
        # The model lets exactly one of two simultaneous movers win; a push should still
        # land, after the other one, as with every registry: try again on a fresh read.
        for _ in range(RETARGET_ATTEMPTS):
            tag = self.model.retarget_tag(repository, tag_name, manifest)
            if tag is not None:
                return tag
        raise DataModelError(f"tag {tag_name} keeps changing concurrently; try again")

    # -- pull ----------------------------------------------------------------------------

    def get(
        self, repository: RepositoryReference, reference: str, accepted: Iterable[str]
    ) -> ManifestBody:
        accept = frozenset(accepted)
        if is_digest_reference(reference):
            try:
                Digest.parse(reference)
            except InvalidDigestError:
                raise ManifestNotFoundError(f"manifest unknown: {reference}") from None
            manifest = self.model.lookup_manifest_by_digest(repository, reference)
            if manifest is None:
                raise ManifestNotFoundError(f"manifest unknown: {reference}")
            return ManifestBody(
                manifest.internal_manifest_bytes, manifest.media_type, manifest.digest
            )
        manifest = self._tagged(repository, reference)
        return self._negotiate(repository, reference, manifest, accept)

    def _tagged(self, repository: RepositoryReference, tag_name: str) -> Manifest:
        try:
            validate_tag_name(tag_name)
        except InvalidNameError:
            raise ManifestNotFoundError(f"manifest unknown: {tag_name}") from None
        manifest = self.model.lookup_tagged_manifest(repository, tag_name)
        if manifest is not None:
            return manifest  # the common case, in one query
        tag = self.model.get_repo_tag(repository, tag_name)
        if tag is None:
            expired = self.model.has_expired_tag(repository, tag_name)
            raise ManifestNotFoundError(
                f"tag {tag_name} expired or was deleted (restorable from its history)"
                if expired
                else f"manifest unknown: {tag_name}"
            )
        manifest = self.model.get_manifest_for_tag(tag, backfill_if_necessary=True)
        if manifest is None:
            raise ManifestNotFoundError(f"tag {tag_name} has no manifest")
        return manifest

    def _negotiate(
        self, repository: RepositoryReference, tag: str, manifest: Manifest, accept: frozenset[str]
    ) -> ManifestBody:
        """protocol.md §2.13: stored bytes whenever the client takes them; otherwise a
        list's linux/amd64 child, or a schema 1 rendering for clients that ask for it."""
        if not accept or "*/*" in accept or manifest.media_type in accept:
            return ManifestBody(
                manifest.internal_manifest_bytes, manifest.media_type, manifest.digest
            )
        if manifest.is_manifest_list:
            child = self._linux_amd64_child(repository, manifest)
            if child is None:
                raise ManifestNotFoundError("the list has no linux/amd64 manifest")
            if child.media_type in accept:
                return ManifestBody(child.internal_manifest_bytes, child.media_type, child.digest)
            manifest = child
        if accept & LEGACY_ACCEPT:
            return self._as_schema1(repository, tag, manifest)
        raise ManifestNotFoundError(
            f"the manifest is {manifest.media_type}, which the client does not accept"
        )

    def _linux_amd64_child(
        self, repository: RepositoryReference, manifest: Manifest
    ) -> Manifest | None:
        parsed = parse_manifest(manifest.internal_manifest_bytes, manifest.media_type)
        for child in parsed.children:
            platform = child.platform or {}
            if platform.get("os") == "linux" and platform.get("architecture") == "amd64":
                return self.model.lookup_manifest_by_digest(repository, child.digest)
        return None

    def _as_schema1(
        self, repository: RepositoryReference, tag: str, manifest: Manifest
    ) -> ManifestBody:
        if manifest.media_type in SCHEMA1_TYPES:
            return ManifestBody(
                manifest.internal_manifest_bytes, manifest.media_type, manifest.digest
            )
        parsed = parse_manifest(manifest.internal_manifest_bytes, manifest.media_type)
        if parsed.config is None or parsed.config.media_type not in IMAGE_CONFIG_TYPES:
            raise ManifestNotFoundError("this manifest has no schema 1 form (not an image)")
        config = self._config_bytes(repository, parsed.config.digest)
        self.ensure_empty_layer(repository)
        try:
            body = schema1_from_image(
                repository.full_name, tag, config, parsed.layers, self.model.schema1_signer()
            )
        except ManifestError as exc:
            raise ManifestNotFoundError(f"this image has no schema 1 form: {exc}") from None
        converted = parse_manifest(body, DOCKER_SCHEMA1_SIGNED_MANIFEST)
        return ManifestBody(body, DOCKER_SCHEMA1_SIGNED_MANIFEST, converted.digest)

    # -- delete --------------------------------------------------------------------------

    def delete(self, repository: RepositoryReference, reference: str) -> None:
        """By digest: the manifest and every tag on it. By tag: only the tag."""
        if is_digest_reference(reference):
            Digest.parse(reference)
            manifest = self.model.lookup_manifest_by_digest(repository, reference, allow_dead=True)
            if manifest is None or not self.model.delete_manifest(repository, manifest):
                raise ManifestNotFoundError(f"manifest unknown: {reference}")
            return
        try:
            validate_tag_name(reference)
            self.model.delete_tag(repository, reference)
        except (InvalidNameError, DataModelError):
            raise ManifestNotFoundError(f"manifest unknown: {reference}") from None


def _check_tag(reference: str) -> None:
    try:
        validate_tag_name(reference)
    except InvalidNameError:
        raise TagInvalidError(f"invalid tag: {reference!r}") from None


def _config_labels(config_bytes: bytes) -> dict[str, str]:
    try:
        config: Any = json.loads(config_bytes)
    except ValueError:
        return {}
    inner = config.get("config") if isinstance(config, dict) else None
    labels = inner.get("Labels") if isinstance(inner, dict) else None
    if not isinstance(labels, dict):
        return {}
    return {str(k): v for k, v in labels.items() if isinstance(v, str) and k}
