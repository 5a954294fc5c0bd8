"""Manifest label rules: key grammar, media type inference, source types, expiry label."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from moorage.domain.errors import (
    DataModelError,
    InvalidLabelKeyError,
    InvalidMediaTypeError,
    ManifestError,
)
from moorage.domain.media_types import APPLICATION_JSON, LABEL_MEDIA_TYPES, TEXT_PLAIN

_KEY_PATTERN = re.compile(r"^[a-z0-9](([a-z0-9]|[-.](?![.-]))*[a-z0-9])?$")
MAX_KEY_LENGTH = 255  # the width of the label key column, for every source
EXPIRES_AFTER_KEY = "quay.expires-after"
_DURATION = re.compile(r"^([0-9]+)([smhdw])$")  # ASCII digits only: no int("²")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# Longest ``quay.expires-after`` honoured: a century. Longer ones are refused, never
# truncated or dropped: a tag end the database cannot hold would lose the expiry.
EXPIRES_AFTER_MAXIMUM_S = 100 * 365 * 86400
_MAX_DURATION_DIGITS = len(str(EXPIRES_AFTER_MAXIMUM_S))
DEFAULT_MAX_LABELS = 256
_ECHO = 40  # characters of a key quoted back in an error message


class LabelValueError(DataModelError):
    """A label value the registry cannot store or act on (e.g. an expiry past a century)."""


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
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidLabelKeyError(
            f"label key {key[:_ECHO]!r}... is longer than {MAX_KEY_LENGTH} characters"
        )
    if not is_storable_text(key):
        raise InvalidLabelKeyError(f"label key {key[:_ECHO]!r} is not valid Unicode text")
    if source is LabelSourceType.MANIFEST:
        return
    if not _KEY_PATTERN.match(key):
        raise InvalidLabelKeyError(f"invalid label key: {key[:_ECHO]!r}")


def is_storable_text(text: str) -> bool:
    """Text both databases store as given: no NUL (PostgreSQL refuses it) and no lone
    surrogate (JSON's ``\\ud800`` escape; it has no UTF-8 form)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def validate_label(key: str, value: str, source: LabelSourceType) -> None:
    """Everything a label must satisfy before it is stored (key, value, expiry)."""
    validate_label_key(key, source)
    if not is_storable_text(value):
        raise LabelValueError(f"label {key[:_ECHO]!r}: the value is not valid Unicode text")
    if key == EXPIRES_AFTER_KEY:
        expires_after_seconds(value)


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
        except (ValueError, RecursionError):  # too deep to parse is text to us
            return TEXT_PLAIN
        return APPLICATION_JSON
    return TEXT_PLAIN


def expires_after_seconds(value: str) -> int | None:
    """Seconds from ``<int><s|m|h|d|w>``. Anything else (``1.5h``, ``-2h``, ``0s``,
    ``soon``) is ignored, as Quay ignores it: None. A duration longer than a century
    raises ``LabelValueError``: refused, so that the expiry is never silently lost."""
    match = _DURATION.match(value.strip())
    if match is None:
        return None
    digits = match.group(1).lstrip("0") or "0"
    seconds = (
        None if len(digits) > _MAX_DURATION_DIGITS else int(digits) * _UNIT_SECONDS[match.group(2)]
    )
    if seconds is None or seconds > EXPIRES_AFTER_MAXIMUM_S:
        shown = value.strip()
        shown = shown if len(shown) <= _ECHO else shown[:_ECHO] + "..."
        raise LabelValueError(
            f"{EXPIRES_AFTER_KEY} {shown!r} is longer than {EXPIRES_AFTER_MAXIMUM_S // 86400}"
            " days (a century)"
        )
    return seconds if seconds > 0 else None


def parse_expires_after(value: str) -> int | None:
    """``expires_after_seconds`` for stored labels: one too long (stored before the limit)
    gives None instead of raising, so that a tag can always move."""
    try:
        return expires_after_seconds(value)
    except LabelValueError:
        return None


def labels_from_config(config: Mapping[str, Any], max_labels: int) -> dict[str, str]:
    """The labels of a parsed image config (``config.Labels``), checked before anything is
    stored. The image-spec's Labels map strings to strings: any other value, a ``config``
    or ``Labels`` that is not an object (null is none), more than ``max_labels`` labels,
    or a label that cannot be stored (``validate_label``) is a ``ManifestError``. Empty
    keys are skipped, as Quay skips them (a Dockerfile can make one)."""
    inner = config.get("config")
    if inner is None:
        return {}
    if not isinstance(inner, dict):
        raise ManifestError("image config: 'config' must be an object")
    labels = inner.get("Labels")
    if labels is None:
        return {}
    if not isinstance(labels, dict):
        raise ManifestError("image config: 'config.Labels' must be an object")
    if len(labels) > max_labels:
        raise ManifestError(
            f"image config has {len(labels)} labels, more than manifest_label_limit ({max_labels})"
        )
    out: dict[str, str] = {}
    for key, value in labels.items():
        if not key:
            continue
        if not isinstance(value, str):
            raise ManifestError(
                f"image config: label {key[:_ECHO]!r} must have a string value"
                " (Labels map strings to strings)"
            )
        try:
            validate_label(key, value, LabelSourceType.MANIFEST)
        except DataModelError as exc:
            raise ManifestError(f"image config: {exc}") from None
        out[key] = value
    return out
