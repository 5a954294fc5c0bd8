"""Request and response bodies of the REST API (Quay's field names)."""

from __future__ import annotations

from email.utils import formatdate
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from moorage.domain.records import Label, LegacyImage, ManifestLayer, RepositoryState, Tag
from moorage.http.api.operation import DIGEST, NAMESPACE_NAME, REPOSITORY_NAME
from moorage.services.repository_admin import RepositoryView
from moorage.services.tag_admin import ManifestView

_RESERVED_KEY = (
    r"^(?:com\.docker\.|io\.docker\.|org\.dockerproject\.|org\.opencontainers\.|io\.cncf\."
    r"|io\.kubernetes\.|io\.k8s\.|io\.quay|com\.coreos|com\.tectonic|internal|quay)"
)
# The label key grammar (services check it; Rust regexes have no look-ahead, so it lives in
# the document only).
_LABEL_KEY = r"^[a-z0-9](?:(?:[a-z0-9]|[-.](?![.-]))*[a-z0-9])?$"


class _Body(BaseModel):
    # Unknown fields are ignored, as Quay's own validation does (scripts send extra ones).
    model_config = ConfigDict(frozen=True, extra="ignore")


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class Error(_Out):
    status: int
    error_type: str
    title: str
    detail: str
    error_message: str
    field: str | None = None


# -- repositories ------------------------------------------------------------------------------


class CreateRepository(_Body):
    namespace: str = Field(min_length=2, max_length=100, pattern=NAMESPACE_NAME)
    repository: str = Field(min_length=1, max_length=150, pattern=REPOSITORY_NAME)
    visibility: Literal["public", "private"] = "private"


class ChangeVisibility(_Body):
    visibility: Literal["public", "private"]


class ChangeState(_Body):
    state: Literal["NORMAL", "READ_ONLY"]


class Repository(_Out):
    namespace: str
    name: str
    kind: str
    is_public: bool
    state: str
    tag_count: int
    size: int
    last_modified: int | None  # epoch seconds of the latest tag change

    @classmethod
    def of(cls, view: RepositoryView) -> Repository:
        repository, summary = view.repository, view.summary
        return cls(
            namespace=repository.namespace_name,
            name=repository.name,
            kind=repository.kind.value,
            is_public=repository.is_public,
            state=RepositoryState(repository.state).name,
            tag_count=summary.tag_count,
            size=summary.size_bytes,
            last_modified=None
            if summary.last_modified_ms is None
            else summary.last_modified_ms // 1000,
        )


class RepositoryList(_Out):
    repositories: list[Repository]
    next_page: str | None = None


class Namespace(_Out):
    name: str
    enabled: bool


class SetNamespaceEnabled(_Body):
    enabled: bool


# -- tags ------------------------------------------------------------------------------------


def _rfc822(ms: int | None) -> str | None:
    return None if ms is None else formatdate(ms / 1000)


class TagOut(_Out):
    name: str
    reversion: bool
    start_ts: int
    end_ts: int | None
    manifest_digest: str | None
    last_modified: str | None
    expiration: str | None

    @classmethod
    def of(cls, tag: Tag) -> TagOut:
        return cls(
            name=tag.name,
            reversion=tag.reversion,
            start_ts=tag.lifetime_start_ts,
            end_ts=tag.lifetime_end_ts,
            manifest_digest=tag.manifest_digest,
            last_modified=_rfc822(tag.lifetime_start_ms),
            expiration=_rfc822(tag.lifetime_end_ms),
        )


class TagList(_Out):
    tags: list[TagOut]
    page: int
    has_additional: bool


class ChangeTag(_Body):
    """Move or create the tag (``manifest_digest``, optionally compare-and-set on
    ``expected_manifest_digest``: "" for a tag that must not exist yet), and/or set its
    ``expiration`` (epoch seconds; null: never), as Quay's PUT does (the move first)."""

    model_config = ConfigDict(
        frozen=True,
        extra="ignore",
        json_schema_extra={
            "anyOf": [
                {
                    "required": ["manifest_digest"],
                    "properties": {"manifest_digest": {"type": "string"}},
                },
                {"required": ["expiration"]},
            ]
        },
    )
    manifest_digest: str | None = Field(default=None, pattern=DIGEST)
    expected_manifest_digest: str | None = Field(default=None, pattern=rf"^$|{DIGEST}")
    expiration: int | None = Field(default=None, ge=0, le=2**40)


class RestoreTag(_Body):
    manifest_digest: str = Field(pattern=DIGEST)


# -- manifests and labels --------------------------------------------------------------------


class Layer(_Out):
    index: int
    compressed_size: int | None
    is_remote: bool
    urls: list[str] | None
    blob_digest: str | None
    placements: list[str] | None = None

    @classmethod
    def of(cls, index: int, layer: ManifestLayer, placements: bool) -> Layer:
        info, blob = layer.layer_info, layer.blob
        return cls(
            index=index,
            compressed_size=info.compressed_size,
            is_remote=info.is_remote,
            urls=list(info.urls) if info.urls else None,
            blob_digest=str(info.blob_digest) if info.blob_digest else None,
            placements=list(blob.placements) if placements and blob is not None else None,
        )


class ManifestOut(_Out):
    digest: str
    media_type: str
    is_manifest_list: bool
    manifest_data: str
    layers: list[Layer] | None

    @classmethod
    def of(cls, view: ManifestView, placements: bool) -> ManifestOut:
        manifest = view.manifest
        return cls(
            digest=manifest.digest,
            media_type=manifest.media_type,
            is_manifest_list=manifest.is_manifest_list,
            manifest_data=manifest.internal_manifest_bytes.decode("utf-8", "replace"),
            layers=None
            if view.layers is None
            else [Layer.of(i, layer, placements) for i, layer in enumerate(view.layers)],
        )


class ImageOut(_Out):
    """A V1 image as Quay lists them: ``ancestors`` is ``/root-id/.../parent-id/``."""

    id: str
    created: str | None
    comment: str | None
    command: str | None
    size: int | None
    sort_index: int
    ancestors: str

    @classmethod
    def chain(cls, images: list[LegacyImage]) -> list[ImageOut]:
        """``images`` leaf first then parents to the root."""
        out = []
        for index, image in enumerate(images):
            parents = [p.docker_image_id for p in images[index + 1 :]]
            out.append(
                cls(
                    id=image.docker_image_id,
                    created=None
                    if image.created is None
                    else formatdate(image.created.timestamp()),
                    comment=image.comment,
                    command=image.command,
                    size=image.image_size,
                    sort_index=len(parents),
                    ancestors="/" + "".join(f"{p}/" for p in reversed(parents)),
                )
            )
        return out


class ImageList(_Out):
    images: list[ImageOut]


class SecurityStatus(_Out):
    status: str
    data: None = None


class LabelOut(_Out):
    id: str
    key: str
    value: str
    source_type: str
    media_type: str

    @classmethod
    def of(cls, label: Label) -> LabelOut:
        return cls(
            id=label.uuid,
            key=label.key,
            value=label.value,
            source_type=label.source_type_name,
            media_type=label.media_type_name,
        )


class LabelList(_Out):
    labels: list[LabelOut]


class AddLabel(_Body):
    key: str = Field(
        min_length=1,
        max_length=255,
        json_schema_extra={"pattern": _LABEL_KEY, "not": {"pattern": _RESERVED_KEY}},
    )
    value: str = Field(max_length=65536, json_schema_extra={"pattern": "^[^\u0000]*$"})
    media_type: Literal["text/plain", "application/json"] | None = None
