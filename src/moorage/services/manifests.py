"""Manifests: pushing (validate, store, link, tag), pulling with content negotiation, deleting."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

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
from moorage.domain.labels import DEFAULT_MAX_LABELS, LabelSourceType, labels_from_config
from moorage.domain.manifests import (
    ParsedManifest,
    V1Entry,
    legacy_chain_from_config,
    parse_manifest,
    schema1_from_image,
)
from moorage.domain.manifests._fields import load_object
from moorage.domain.manifests.legacy import load_image_config
from moorage.domain.manifests.schema1 import DEFAULT_MAX_SIGNATURES
from moorage.domain.media_types import (
    DOCKER_SCHEMA1_MANIFEST,
    DOCKER_SCHEMA1_SIGNED_MANIFEST,
    IMAGE_CONFIG_TYPES,
    MANIFEST_TYPES,
    SCHEMA1_TYPES,
)
from moorage.domain.names import split_full_name, validate_tag_name
from moorage.domain.records import Manifest, RepositoryReference
from moorage.model.interface import (
    ManifestLabels,
    ManifestReads,
    ManifestWrites,
    RepositoryBlobs,
    TagReads,
    TagWrites,
)
from moorage.services.blobs import BlobService
from moorage.services.reads import pure_read
from moorage.services.uploads import UploadService

APPLICATION_JSON = "application/json"
LEGACY_ACCEPT = SCHEMA1_TYPES | {APPLICATION_JSON}
MIB = 1024 * 1024


class ManifestStore(
    ManifestLabels, ManifestReads, ManifestWrites, RepositoryBlobs, TagReads, TagWrites, Protocol
):
    """What manifest pushes, pulls and deletes read and write."""


@dataclass(frozen=True, slots=True)
class ManifestSettings:
    size_limit: int = 4 * MIB
    temp_tag_expiration_s: int = 300  # keeps a manifest pushed by digest alive until tagged
    label_limit: int = DEFAULT_MAX_LABELS  # labels one image config may carry
    config_size_limit: int = 1 * MIB  # image configs read for labels and the V1 view
    signature_limit: int = DEFAULT_MAX_SIGNATURES  # signatures of one schema 1 manifest


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
    # The strict reader: bounded nesting and integers, errors in our words.
    fields = load_object(body)
    if fields.get("schemaVersion") == 1:
        return DOCKER_SCHEMA1_SIGNED_MANIFEST if "signatures" in fields else DOCKER_SCHEMA1_MANIFEST
    sniffed = fields.get("mediaType")
    if not isinstance(sniffed, str) or sniffed not in MANIFEST_TYPES:
        raise ManifestMediaTypeError("cannot tell the manifest media type")
    return sniffed


class ManifestService:
    def __init__(
        self,
        model: ManifestStore,
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
        parsed = parse_manifest(
            body,
            declared_media_type(content_type, body),
            algorithm,
            max_signatures=self.settings.signature_limit,
        )
        if by_digest and parsed.digest != reference:
            raise DigestMismatchError(reference, parsed.digest)
        self._check_schema1(repository, parsed, None if by_digest else reference)
        tags = list(dict.fromkeys(extra_tags)) if by_digest else [reference]
        self._store(repository, parsed, temp_tag=by_digest, tags=tags)
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
        self,
        repository: RepositoryReference,
        parsed: ParsedManifest,
        *,
        temp_tag: bool,
        tags: Sequence[str],
    ) -> Manifest:
        """Everything the push stores, in one model transaction: manifest, links, V1
        chain, labels, temp tag, tags and the expiry the labels set. The config is read
        and every label checked first, so a refusal stores nothing. A manifest stored
        without its labels (by a version that wrote them one by one and failed half way)
        gets them when it is pushed again."""
        existing = self.model.lookup_manifest_by_digest(repository, parsed.digest, allow_dead=True)
        chain: list[V1Entry] | None = None
        labels: dict[str, str] = {}
        config = parsed.config
        is_image = config is not None and config.media_type in IMAGE_CONFIG_TYPES
        if config is not None and is_image and (existing is None or self._lacks_labels(existing)):
            document = self._config_document(repository, config.digest)
            labels = labels_from_config(document, self.settings.label_limit)
            if existing is None:
                try:
                    chain = list(legacy_chain_from_config(document, parsed.layers))
                except ManifestError:
                    chain = None  # history and layers disagree, or past the V1 limit
            if chain and any(entry.blob_digest == EMPTY_LAYER_DIGEST for entry in chain):
                self.ensure_empty_layer(repository)
        return self.model.create_manifest(
            repository,
            parsed.raw,
            parsed.media_type,
            legacy_chain=chain,
            temp_tag_expiration_s=self.settings.temp_tag_expiration_s if temp_tag else None,
            digest_algorithm=parsed.digest.split(":", 1)[0],
            parsed=parsed,
            labels=labels,
            tags=tags,
        )

    def _lacks_labels(self, manifest: Manifest) -> bool:
        """No label from its config: never pushed with labels, or left half-written."""
        return not any(
            label.source_type_name == LabelSourceType.MANIFEST.value
            for label in self.model.list_manifest_labels(manifest)
        )

    def _config_bytes(self, repository: RepositoryReference, digest: str) -> bytes:
        limit = self.settings.config_size_limit
        try:
            return self.blobs.read_small(repository, digest, limit)
        except BlobNotFoundError:
            raise BlobUnknownError(digest) from None
        except ManifestError:
            raise ManifestError(
                f"image config {digest} is larger than manifest_config_size_limit ({limit} bytes)"
            ) from None

    def _config_document(self, repository: RepositoryReference, digest: str) -> dict[str, Any]:
        return load_image_config(self._config_bytes(repository, digest))

    def ensure_empty_layer(self, repository: RepositoryReference) -> None:
        """The gzipped empty tar that V1 views use for empty history entries: stored once,
        visible in every repository; stored again when no configured location holds it
        (its only copy quarantined by ``moorage storage verify``, say)."""
        blob = self.model.get_repo_blob_by_digest(
            repository, EMPTY_LAYER_DIGEST, include_placements=True
        )
        if blob is not None and self.blobs.locations.holding(blob.placements):
            return
        self.uploads.upload_whole(
            repository, EMPTY_LAYER_DIGEST, [EMPTY_LAYER_BYTES], len(EMPTY_LAYER_BYTES)
        )

    # -- pull ----------------------------------------------------------------------------

    @pure_read
    def get_stored(
        self, repository: RepositoryReference, reference: str, accepted: Iterable[str]
    ) -> ManifestBody | None:
        """The common GET answered by reads alone: by digest, or a tag whose stored bytes
        (or, for a list, whose linux/amd64 child) the client accepts. None when answering
        needs more (an expired tag, a backfill, a schema 1 rendering): ask ``get``."""
        if is_digest_reference(reference):
            return self.get(repository, reference, accepted)
        accept = frozenset(accepted)
        try:
            validate_tag_name(reference)
        except InvalidNameError:
            raise ManifestNotFoundError(f"manifest unknown: {reference}") from None
        manifest = self.model.lookup_tagged_manifest(repository, reference)
        if manifest is None:
            return None
        if not accept or "*/*" in accept or manifest.media_type in accept:
            return ManifestBody(
                manifest.internal_manifest_bytes, manifest.media_type, manifest.digest
            )
        return None

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
        try:
            config = self._config_document(repository, parsed.config.digest)
        except ManifestError as exc:
            raise ManifestNotFoundError(f"this image has no schema 1 form: {exc}") from None
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
