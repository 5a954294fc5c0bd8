"""Value types produced by the manifest parser.

Everything here is immutable. ``dict`` fields (annotations, platform) are compared but
left out of hashing so the dataclasses stay hashable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from moorage.domain.errors import ManifestError
from moorage.domain.media_types import LIST_TYPES

# Media type given to schema1 layers, which carry no media type of their own.
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
# Size given to a descriptor whose size the manifest does not state (schema1 without ``Size``).
UNKNOWN_SIZE = -1


class ManifestUnverifiedError(ManifestError):
    """A schema1 manifest's signature is missing or does not verify (``MANIFEST_UNVERIFIED``)."""


@dataclass(frozen=True, slots=True)
class Descriptor:
    """A content reference: the OCI descriptor (§2.2)."""

    media_type: str
    digest: str
    size: int
    urls: tuple[str, ...] = ()
    annotations: dict[str, str] = field(default_factory=dict, hash=False)
    platform: dict[str, Any] | None = field(default=None, hash=False)
    artifact_type: str | None = None
    data: str | None = None  # base64 text of the embedded content, as found in the manifest

    @property
    def is_remote(self) -> bool:
        """Content with ``urls`` may live outside the registry and is never required."""
        return bool(self.urls)

    def to_json_dict(self) -> dict[str, Any]:
        """The descriptor as a JSON object, omitting empty optional fields."""
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.urls:
            out["urls"] = list(self.urls)
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.data is not None:
            out["data"] = self.data
        if self.platform is not None:
            out["platform"] = dict(self.platform)
        if self.artifact_type is not None:
            out["artifactType"] = self.artifact_type
        return out


@dataclass(frozen=True, slots=True)
class V1Entry:
    """One image of the legacy V1 chain (a schema1 history entry)."""

    id: str
    parent: str | None
    blob_digest: str
    v1_json: str
    created: datetime | None
    comment: str | None
    command: str | None
    author: str | None
    throwaway: bool
    size: int | None


@dataclass(frozen=True, slots=True)
class Schema1Info:
    """What only a schema1 manifest carries. ``entries`` run base → leaf."""

    name: str
    tag: str
    architecture: str
    entries: tuple[V1Entry, ...]
    payload: bytes  # the unsigned payload the digest is computed over
    key_ids: tuple[str, ...] = ()  # libtrust key ids of the verified signers; empty if unsigned

    @property
    def signed(self) -> bool:
        return bool(self.key_ids)


@dataclass(frozen=True, slots=True)
class ParsedManifest:
    """A validated manifest of any supported type. ``layers`` always run base → leaf."""

    media_type: str
    digest: str
    raw: bytes
    config: Descriptor | None = None
    layers: tuple[Descriptor, ...] = ()
    children: tuple[Descriptor, ...] = ()
    subject: Descriptor | None = None
    artifact_type: str | None = None
    annotations: dict[str, str] = field(default_factory=dict, hash=False)
    schema1: Schema1Info | None = None

    @property
    def is_list(self) -> bool:
        return self.media_type in LIST_TYPES

    @property
    def local_blob_digests(self) -> tuple[str, ...]:
        """Blobs that must be present in the repository: config and non-remote layers, once each."""
        refs = ([self.config] if self.config is not None else []) + list(self.layers)
        seen: dict[str, None] = {}
        for ref in refs:
            if not ref.urls:
                seen.setdefault(ref.digest, None)
        return tuple(seen)

    @property
    def remote_layers(self) -> tuple[Descriptor, ...]:
        """Layers that declare ``urls`` (foreign / non-distributable content)."""
        return tuple(layer for layer in self.layers if layer.urls)
