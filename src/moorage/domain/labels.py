"""Manifest label rules: key grammar, media type inference, source types, expiry label."""

from __future__ import annotations

import json
import re
from enum import StrEnum

from moorage.domain.errors import InvalidLabelKeyError, InvalidMediaTypeError
from moorage.domain.media_types import APPLICATION_JSON, LABEL_MEDIA_TYPES, TEXT_PLAIN

_KEY_PATTERN = re.compile(r"^[a-z0-9](([a-z0-9]|[-.](?![.-]))*[a-z0-9])?$")
MAX_KEY_LENGTH = 255
EXPIRES_AFTER_KEY = "quay.expires-after"
_DURATION = re.compile(r"^([0-9]+)([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

# Keys users may not set through the API (plain prefix match, as Quay does).
DEFAULT_RESERVED_PREFIXES = (
    "com.docker.",
    "io.docker.",
    "org.dockerproject.",
    "org.opencontainers.",
    "io.cncf.",
    "io.kubernetes.",
    "io.k8s.",
    "io.quay",
    "com.coreos",
    "com.tectonic",
    "internal",
    "quay",
)


class LabelSourceType(StrEnum):
    MANIFEST = "manifest"  # taken from the image config at push; immutable
    API = "api"  # set by a user; the only mutable kind
    INTERNAL = "internal"  # set by the registry itself; immutable

    @property
    def mutable(self) -> bool:
        return self is LabelSourceType.API


def parse_source_type(name: str) -> LabelSourceType:
    try:
        return LabelSourceType(name)
    except ValueError:
        raise InvalidMediaTypeError(f"unknown label source type: {name!r}") from None


def validate_label_key(key: str, source: LabelSourceType) -> None:
    """Empty keys never pass; manifest-sourced keys skip the grammar (Docker's LABEL allows any)."""
    if not key:
        raise InvalidLabelKeyError("label key must not be empty")
    if source is LabelSourceType.MANIFEST:
        return
    if len(key) > MAX_KEY_LENGTH or not _KEY_PATTERN.match(key):
        raise InvalidLabelKeyError(f"invalid label key: {key!r}")


def is_reserved_key(key: str, extra_prefixes: tuple[str, ...] = ()) -> bool:
    return any(key.startswith(p) for p in DEFAULT_RESERVED_PREFIXES + extra_prefixes)


def resolve_media_type(value: str, media_type: str | None) -> str:
    """An explicit type must be known; otherwise JSON-looking values that parse are JSON."""
    if media_type is not None:
        if media_type not in LABEL_MEDIA_TYPES:
            raise InvalidMediaTypeError(f"unknown media type: {media_type!r}")
        return media_type
    stripped = value.strip()
    looks_json = (stripped.startswith("{") and stripped.endswith("}")) or (
        stripped.startswith("[") and stripped.endswith("]")
    )
    if looks_json:
        try:
            json.loads(stripped)
        except ValueError:
            return TEXT_PLAIN
        return APPLICATION_JSON
    return TEXT_PLAIN


def parse_expires_after(value: str) -> int | None:
    """Seconds from ``<int><s|m|h|d|w>``; anything else (including negatives) is ignored."""
    match = _DURATION.match(value.strip())
    if match is None:
        return None
    seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    return seconds if seconds > 0 else None
