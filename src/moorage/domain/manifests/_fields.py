"""Strict JSON reading and typed field access shared by the manifest parsers."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any, NoReturn, TypeGuard

from moorage.domain.digest import Digest
from moorage.domain.errors import InvalidDigestError, ManifestError
from moorage.domain.manifests.model import Descriptor

MAX_SIZE = 2**63 - 1


def fail(message: str) -> NoReturn:
    raise ManifestError(message)


def _pairs_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            fail(f"duplicate JSON key {key!r}")
        out[key] = value
    return out


def _no_constants(name: str) -> NoReturn:
    fail(f"invalid JSON number {name}")


def loads_strict(data: bytes | str, what: str = "manifest") -> Any:
    """Parse UTF-8 JSON, refusing other encodings, duplicate keys and NaN/Infinity."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ManifestError(f"{what} is not valid UTF-8") from exc
    else:
        text = data
    try:
        return json.loads(
            text, object_pairs_hook=_pairs_without_duplicates, parse_constant=_no_constants
        )
    except (ValueError, RecursionError) as exc:
        if isinstance(exc, ManifestError):
            raise
        raise ManifestError(f"{what} is not valid JSON: {exc}") from exc


def load_object(data: bytes | str, what: str = "manifest") -> dict[str, Any]:
    value = loads_strict(data, what)
    if not isinstance(value, dict):
        fail(f"{what} must be a JSON object")
    return value


def is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def get_str(obj: dict[str, Any], key: str, where: str) -> str | None:
    """An optional string field: absent gives None, present must be a string."""
    if key not in obj:
        return None
    value = obj[key]
    if not isinstance(value, str):
        fail(f"{where}: {key!r} must be a string")
    return value


def require_str(obj: dict[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        fail(f"{where}: {key!r} must be a string")
    return value


def get_list(obj: dict[str, Any], key: str, where: str, *, required: bool = False) -> list[Any]:
    if key not in obj:
        if required:
            fail(f"{where}: {key!r} is required")
        return []
    value = obj[key]
    if not isinstance(value, list):
        fail(f"{where}: {key!r} must be an array")
    return value


def get_str_map(obj: dict[str, Any], key: str, where: str) -> dict[str, str]:
    if key not in obj:
        return {}
    value = obj[key]
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        fail(f"{where}: {key!r} must be a map of strings to strings")
    return dict(value)


def check_digest(value: object, where: str) -> str:
    if not isinstance(value, str):
        fail(f"{where}: digest must be a string")
    try:
        Digest.parse(value)
    except InvalidDigestError as exc:
        raise ManifestError(f"{where}: {exc}") from exc
    return value


def _check_data(data: str, digest: str, size: int, where: str) -> None:
    try:
        decoded = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ManifestError(f"{where}: 'data' is not valid base64") from exc
    if len(decoded) != size:
        fail(f"{where}: 'data' holds {len(decoded)} bytes but size is {size}")
    algorithm, expected = digest.split(":", 1)
    if hashlib.new(algorithm, decoded).hexdigest() != expected:
        fail(f"{where}: 'data' does not match the digest")


def _check_platform(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        fail(f"{where}: 'platform' must be an object")
    for key in ("architecture", "os"):
        if not isinstance(value.get(key), str):
            fail(f"{where}: platform {key!r} must be a string")
    return dict(value)


def parse_descriptor(value: object, where: str) -> Descriptor:
    """Validate one descriptor object (§2.2, §2.10 step 4)."""
    if not isinstance(value, dict):
        fail(f"{where}: descriptor must be an object")
    media_type = require_str(value, "mediaType", where)
    if not media_type:
        fail(f"{where}: 'mediaType' must not be empty")
    digest = check_digest(value.get("digest"), where)
    size = value.get("size")
    if not is_int(size) or not 0 <= size <= MAX_SIZE:
        fail(f"{where}: 'size' must be a non-negative integer")
    urls = get_list(value, "urls", where)
    if not all(isinstance(url, str) and url for url in urls):
        fail(f"{where}: 'urls' must be non-empty strings")
    data = get_str(value, "data", where)
    if data is not None:
        _check_data(data, digest, size, where)
    platform = _check_platform(value["platform"], where) if "platform" in value else None
    return Descriptor(
        media_type=media_type,
        digest=digest,
        size=size,
        urls=tuple(urls),
        annotations=get_str_map(value, "annotations", where),
        platform=platform,
        artifact_type=get_str(value, "artifactType", where),
        data=data,
    )
