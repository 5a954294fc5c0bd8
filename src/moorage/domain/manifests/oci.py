"""OCI image manifest / index and Docker schema 2 manifest / manifest list (§2.4, §2.5, §2.9)."""

from __future__ import annotations

from typing import Any

from moorage.domain.digest import compute_digest
from moorage.domain.echo import echo
from moorage.domain.manifests._fields import (
    fail,
    get_list,
    get_str,
    get_str_map,
    is_int,
    parse_descriptor,
)
from moorage.domain.manifests.model import Descriptor, ParsedManifest
from moorage.domain.media_types import (
    DOCKER_SCHEMA2_MANIFEST,
    DOCKER_SCHEMA2_MANIFEST_LIST,
    OCI_IMAGE_INDEX,
    OCI_IMAGE_MANIFEST,
)

IMAGE_TYPES = frozenset({OCI_IMAGE_MANIFEST, DOCKER_SCHEMA2_MANIFEST})
INDEX_TYPES = frozenset({OCI_IMAGE_INDEX, DOCKER_SCHEMA2_MANIFEST_LIST})

# Keys whose presence shows what kind of document a body really is.
_IMAGE_ONLY_KEYS = ("config", "layers")
_INDEX_ONLY_KEYS = ("manifests",)


def _check_envelope(body: dict[str, Any], declared: str) -> None:
    """Make sure the body is the kind of document the declared media type says it is.

    This runs before any field is trusted, so an index cannot be smuggled in under an
    image manifest type (or the reverse) and be read with the wrong rules.
    """
    version = body.get("schemaVersion")
    if not is_int(version) or version != 2:
        fail(f"schemaVersion must be 2 for {declared}, got {echo(version)}")
    if "mediaType" in body:
        body_type = body["mediaType"]
        if not isinstance(body_type, str):
            fail("'mediaType' must be a string")
        if body_type != declared:
            fail(f"manifest mediaType {echo(body_type)} does not match declared type {declared!r}")
    if declared in IMAGE_TYPES:
        stray = [key for key in _INDEX_ONLY_KEYS if key in body]
        if stray:
            fail(f"an image manifest must not carry {stray[0]!r} (is this an index?)")
        if "config" not in body:
            fail("an image manifest requires 'config'")
    else:
        stray = [key for key in _IMAGE_ONLY_KEYS if key in body]
        if stray:
            fail(f"an index must not carry {stray[0]!r} (is this an image manifest?)")
        if "manifests" not in body:
            fail("an index requires 'manifests'")


def _descriptors(body: dict[str, Any], key: str) -> tuple[Descriptor, ...]:
    return tuple(
        parse_descriptor(item, f"{key}[{index}]")
        for index, item in enumerate(get_list(body, key, "manifest", required=key == "manifests"))
    )


def parse_v2(raw: bytes, body: dict[str, Any], declared: str, algorithm: str) -> ParsedManifest:
    """Validate a schemaVersion 2 body already decoded from ``raw``."""
    _check_envelope(body, declared)
    subject = parse_descriptor(body["subject"], "subject") if "subject" in body else None
    artifact_type = get_str(body, "artifactType", "manifest")
    if artifact_type == "":
        fail("'artifactType' must not be empty")
    annotations = get_str_map(body, "annotations", "manifest")
    digest = compute_digest(raw, algorithm)

    if declared in IMAGE_TYPES:
        config = parse_descriptor(body["config"], "config")
        layers = _descriptors(body, "layers")
        # §2.6: the referrers API reports artifactType, else the config media type.
        return ParsedManifest(
            media_type=declared,
            digest=digest,
            raw=raw,
            config=config,
            layers=layers,
            subject=subject,
            artifact_type=artifact_type if artifact_type is not None else config.media_type,
            annotations=annotations,
        )
    return ParsedManifest(
        media_type=declared,
        digest=digest,
        raw=raw,
        children=_descriptors(body, "manifests"),
        subject=subject,
        artifact_type=artifact_type,
        annotations=annotations,
    )
