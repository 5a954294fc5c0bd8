"""Squashed images as derived images: found for a tag or digest (and platform), built once
into storage, signed, served from storage ever after.

A squashed image is keyed, as the model keys derived images, by the manifest's leaf legacy
image and the verb ``squash``, plus varying metadata: the config digest (two images with
the same layers and history but another config are not the same image) and the tag it is
loaded as (the archive names it), none when asked by digest. A list's platform picks its
child manifest first, so the platform is part of the key through that child.

Building: the cross-process lock of the derived image (``BuildLocks``) is taken without
waiting; its holder flattens the layers into a scratch file, writes the archive into
storage (one atomic ``put``), signs it when a key is configured, then records the size,
which marks the image complete. An interrupted build leaves an incomplete row (and no
object, or a stale one that is rewritten): the next request builds it again.
"""

from __future__ import annotations

import io
import json
import tempfile
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol, cast

from moorage.domain.digest import Digest
from moorage.domain.errors import (
    BlobNotFoundError,
    InvalidDigestError,
    InvalidNameError,
    ManifestError,
    ManifestNotFoundError,
    MoorageError,
    NotFoundError,
)
from moorage.domain.manifests import Descriptor, ParsedManifest, parse_manifest
from moorage.domain.manifests.schema1 import STORED_MAX_SIGNATURES
from moorage.domain.media_types import IMAGE_CONFIG_TYPES
from moorage.domain.names import validate_tag_name
from moorage.domain.records import DerivedImage, Manifest, RepositoryReference
from moorage.model.interface import DerivedImages, ManifestReads, ManifestWrites, TagReads
from moorage.observability import get_logger
from moorage.services.blobs import BlobService
from moorage.services.squash.archive import FlatLayer, docker_archive, squashed_config
from moorage.services.squash.flatten import LayerFormatError, LayerOpener, flatten
from moorage.services.squash.streams import (
    CheckedReader,
    ChunkReader,
    DigestMismatchError,
    HashingWriter,
    decompressed,
)
from moorage.storage import ObjectNotFoundError, StorageDriver, keys

if TYPE_CHECKING:  # python-gnupg is loaded only where a key is configured
    from moorage.services.squash.signing import GpgSigner

log = get_logger(__name__)
VERB = "squash"
SIGNER_NAME = "gpg2"  # the model's signature kind
DEFAULT_PLATFORM = "linux/amd64"
MIB = 1024 * 1024


class SquashStore(DerivedImages, ManifestReads, ManifestWrites, TagReads, Protocol):
    """What squashing reads (tags, manifests) and writes (derived images)."""


class BuildLockSource(Protocol):
    def hold(self, derived_image_id: int) -> AbstractContextManager[bool]:
        """True while this caller holds the build lock of the derived image, False when
        another process or thread has it (never waits)."""
        ...


class SquashUnavailableError(ManifestNotFoundError):
    """The image exists but has no squashed form (an artifact, foreign layers, no V1 chain)."""


class SquashingDisabledError(NotFoundError):
    """Squashed images (or their signatures) are not enabled on this registry."""


@dataclass(frozen=True, slots=True)
class SquashSettings:
    config_size_limit: int = 1 * MIB  # largest image config read
    read_only: bool = False  # serve what was built, build nothing
    scratch_dir: Path | None = None  # where the flat layer is spooled; None: the system's


@dataclass(frozen=True, slots=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None

    @classmethod
    def parse(cls, text: str) -> Platform:
        parts = text.split("/")
        if len(parts) not in (2, 3) or not all(parts) or len(text) > 100:
            raise ManifestNotFoundError(f"platform {text[:100]!r} is not os/architecture[/variant]")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    def matches(self, declared: dict[str, Any]) -> bool:
        return (
            declared.get("os") == self.os
            and declared.get("architecture") == self.architecture
            and (self.variant is None or declared.get("variant") == self.variant)
        )

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


@dataclass(frozen=True, slots=True)
class SquashTarget:
    """An image to squash: its manifest (a list's chosen child), config and layers."""

    repository: RepositoryReference
    manifest: Manifest
    config: dict[str, Any]
    config_key: str  # the config's digest (or, for schema 1, the manifest's)
    layers: tuple[Descriptor, ...]
    tag: str | None

    @property
    def varying_metadata(self) -> dict[str, Any]:
        metadata: dict[str, Any] = {"config": self.config_key}
        if self.tag is not None:
            metadata["tag"] = self.tag
        return metadata


@dataclass(frozen=True, slots=True)
class SquashContent:
    """A complete squashed image in storage."""

    derived: DerivedImage
    size: int
    storage: StorageDriver
    key: str
    local_file: Path | None

    def chunks(self, start: int = 0, length: int | None = None) -> Iterator[bytes]:
        return self.storage.read(self.key, start, length)


class SquashService:
    def __init__(
        self,
        model: SquashStore,
        blobs: BlobService,
        locks: BuildLockSource,
        settings: SquashSettings,
        signer: GpgSigner | None = None,
    ) -> None:
        self.model, self.blobs, self.locks = model, blobs, locks
        self.settings, self.signer = settings, signer
        self.locations = blobs.locations

    # -- finding the image ----------------------------------------------------------

    def locate(
        self, repository: RepositoryReference, reference: str, platform: str | None
    ) -> SquashTarget:
        """The image ``reference`` (a tag or a manifest digest) names, for ``platform``
        (os/architecture[/variant]; a list's default is linux/amd64)."""
        wanted = None if platform is None else Platform.parse(platform)
        tag: str | None = None
        if ":" in reference:
            try:
                Digest.parse(reference)
            except InvalidDigestError:
                raise ManifestNotFoundError(f"manifest unknown: {reference[:100]}") from None
            manifest = self.model.lookup_manifest_by_digest(repository, reference)
        else:
            try:
                validate_tag_name(reference)
            except InvalidNameError:
                raise ManifestNotFoundError(f"manifest unknown: {reference[:100]}") from None
            tag = reference
            manifest = self._tagged(repository, reference)
        if manifest is None:
            raise ManifestNotFoundError(f"manifest unknown: {reference[:100]}")
        parsed = parse_manifest(
            manifest.internal_manifest_bytes,
            manifest.media_type,
            max_signatures=STORED_MAX_SIGNATURES,
        )
        if parsed.is_list:
            manifest, parsed = self._child(
                repository, parsed, wanted or Platform.parse(DEFAULT_PLATFORM)
            )
            wanted = None  # the list's own declaration chose it
        config, config_key = self._config(repository, parsed)
        if wanted is not None and not wanted.matches(config):
            raise ManifestNotFoundError(f"the image is not for {wanted}")
        if any(layer.is_remote for layer in parsed.layers):
            raise SquashUnavailableError("the image has foreign layers, which are not stored here")
        return SquashTarget(repository, manifest, config, config_key, parsed.layers, tag)

    def _tagged(self, repository: RepositoryReference, tag_name: str) -> Manifest | None:
        manifest = self.model.lookup_tagged_manifest(repository, tag_name)
        if manifest is not None:
            return manifest
        tag = self.model.get_repo_tag(repository, tag_name)
        return None if tag is None else self.model.get_manifest_for_tag(tag, True)

    def _child(
        self, repository: RepositoryReference, parsed: ParsedManifest, wanted: Platform
    ) -> tuple[Manifest, ParsedManifest]:
        for child in parsed.children:
            if child.platform is not None and wanted.matches(child.platform):
                manifest = self.model.lookup_manifest_by_digest(repository, child.digest)
                if manifest is None:
                    break
                child_parsed = parse_manifest(
                    manifest.internal_manifest_bytes,
                    manifest.media_type,
                    max_signatures=STORED_MAX_SIGNATURES,
                )
                if child_parsed.is_list:
                    raise SquashUnavailableError("a list inside a list has no squashed form")
                return manifest, child_parsed
        raise ManifestNotFoundError(f"the list has no image for {wanted}")

    def _config(
        self, repository: RepositoryReference, parsed: ParsedManifest
    ) -> tuple[dict[str, Any], str]:
        if parsed.schema1 is not None:
            if not parsed.schema1.entries:
                raise SquashUnavailableError("the schema 1 manifest has no layers")
            return _schema1_config(parsed.schema1.entries[-1].v1_json), parsed.digest
        if parsed.config is None or parsed.config.media_type not in IMAGE_CONFIG_TYPES:
            raise SquashUnavailableError("the manifest is not a container image")
        limit = self.settings.config_size_limit
        try:
            raw = self.blobs.read_small(repository, parsed.config.digest, limit)
        except BlobNotFoundError:
            raise SquashUnavailableError("the image's config is not stored here") from None
        except ManifestError:
            raise SquashUnavailableError(f"the image's config is over {limit} bytes") from None
        try:
            document = json.loads(raw)
        except ValueError:
            document = None
        if not isinstance(document, dict):
            raise SquashUnavailableError("the image's config is not a JSON object")
        return document, parsed.config.digest

    # -- stored images --------------------------------------------------------------

    def stored(self, target: SquashTarget) -> SquashContent | None:
        """The complete squashed image, when it is built and its bytes are in storage."""
        derived = self.model.lookup_derived_image(
            target.manifest, VERB, target.varying_metadata, include_placements=True
        )
        return None if derived is None else self._content(derived)

    def _content(self, derived: DerivedImage) -> SquashContent | None:
        if derived.blob.uploading or derived.blob.compressed_size is None:
            return None
        key = keys.derived_key(derived.blob.uuid)
        for name, storage in self.locations.holding(derived.blob.placements):
            try:
                local_file = storage.local_path(key)
                if local_file is None:
                    storage.stat(key)
            except ObjectNotFoundError:
                log.warning("squashed image missing from storage", key=key, location=name)
                continue
            return SquashContent(derived, derived.blob.compressed_size, storage, key, local_file)
        return None

    def build(self, target: SquashTarget) -> SquashContent | None:
        """Builds the image unless it is complete; None when another holder of its lock is
        building it (ask again later). Blocks: call it from a worker thread."""
        if self.settings.read_only:
            found = self.stored(target)
            if found is None:
                raise SquashUnavailableError("not built yet, and this registry is read-only")
            return found
        metadata = target.varying_metadata
        derived = self.model.lookup_derived_image(
            target.manifest, VERB, metadata, include_placements=True
        ) or self.model.lookup_or_create_derived_image(
            target.manifest, VERB, self.locations.default, metadata, include_placements=True
        )
        if derived is None:
            raise SquashUnavailableError("the image has no V1 layer chain to squash")
        with self.locks.hold(derived.id) as held:
            if not held:
                return None
            found = self.stored(target)  # finished while we were asking for the lock?
            if found is not None:
                return found
            self._produce(target, derived)
            return self.stored(target)

    def _produce(self, target: SquashTarget, derived: DerivedImage) -> None:
        held = self.locations.holding(derived.blob.placements)
        if not held:
            raise MoorageError("the squashed image's storage location is not configured")
        storage = held[0][1]
        key = keys.derived_key(derived.blob.uuid)
        openers = [self._opener(target.repository, layer) for layer in target.layers]
        with tempfile.TemporaryFile(dir=self.settings.scratch_dir) as scratch:
            writer = HashingWriter(scratch)
            try:
                flatten(openers, cast(IO[bytes], writer))
            except (LayerFormatError, DigestMismatchError, OSError, EOFError) as exc:
                raise ManifestError(f"cannot squash the image: {exc}") from None
            layer = FlatLayer(scratch, writer.size, writer.hash.hexdigest())
            comment = f"squashed by moorage from {len(target.layers)} layers"
            config = squashed_config(target.config, layer, comment)
            repo_tag = None if target.tag is None else (target.repository.full_name, target.tag)
            size = storage.put(key, docker_archive(config, layer, repo_tag))
        if self.signer is not None:
            with self._reader(storage, key) as stored_bytes:
                signature = self.signer.sign(stored_bytes)
            self.model.set_derived_image_signature(derived, SIGNER_NAME, signature)
        self.model.set_derived_image_size(derived, size)
        log.info("squashed image built", key=key, size=size, layers=len(target.layers))

    def _opener(self, repository: RepositoryReference, layer: Descriptor) -> LayerOpener:
        checked = [False]  # the first pass checks the digest; the second trusts it

        @contextmanager
        def open_layer() -> Iterator[IO[bytes]]:
            try:
                content = self.blobs.content(repository, layer.digest)
            except BlobNotFoundError:
                raise SquashUnavailableError(f"layer {layer.digest} is not stored here") from None
            raw: io.RawIOBase = ChunkReader(content.chunks())
            if not checked[0]:
                raw = CheckedReader(raw, content.digest)
                checked[0] = True
            yield decompressed(raw)

        return open_layer

    @contextmanager
    def _reader(self, storage: StorageDriver, key: str) -> Iterator[IO[bytes]]:
        local = storage.local_path(key)
        if local is not None:
            with local.open("rb") as file:
                yield file
            return
        yield cast(IO[bytes], io.BufferedReader(ChunkReader(storage.read(key)), 1 << 20))

    # -- signatures -----------------------------------------------------------------

    def signature(self, content: SquashContent) -> str:
        """The armored signature of a complete image, made now if it was built unsigned
        (before a key was configured)."""
        if self.signer is None:
            raise SquashingDisabledError("this registry does not sign squashed images")
        found = self.model.get_derived_image_signature(content.derived, SIGNER_NAME)
        if found is not None:
            return found
        with self._reader(content.storage, content.key) as stored_bytes:
            signature = self.signer.sign(stored_bytes)
        self.model.set_derived_image_signature(content.derived, SIGNER_NAME, signature)
        return signature

    def public_key(self) -> str:
        if self.signer is None:
            raise SquashingDisabledError("this registry does not sign squashed images")
        return self.signer.public_key()


def _schema1_config(v1_json: str) -> dict[str, Any]:
    """A config for a schema 1 image, from its top V1 image's JSON."""
    try:
        v1 = json.loads(v1_json)
    except ValueError:
        v1 = None
    if not isinstance(v1, dict):
        raise SquashUnavailableError("the schema 1 manifest's top image JSON is not an object")
    config: dict[str, Any] = {"architecture": v1.get("architecture") or "amd64"}
    config["os"] = v1.get("os") or "linux"
    for field in ("config", "created", "author", "container_config", "docker_version"):
        if v1.get(field) is not None:
            config[field] = v1[field]
    return config
