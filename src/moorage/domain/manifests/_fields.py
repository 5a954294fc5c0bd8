"""Strict JSON reading and typed field access shared by the manifest parsers."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
from itertools import accumulate
from typing import Any, NoReturn, TypeGuard

from moorage.domain.digest import Digest
from moorage.domain.echo import echo
from moorage.domain.errors import InvalidDigestError, ManifestError
from moorage.domain.manifests.model import Descriptor

MAX_SIZE = 2**63 - 1
_MIN_INT = -(2**63)
_INT_DIGITS = len(str(MAX_SIZE))  # 19
# No manifest, config or signature header comes near this; a recursive parser at 100,000
# levels does not survive it.
MAX_DEPTH = 64
# A string literal, or what is left of the text after an unterminated one: every match that
# starts succeeds, so the scan is linear (a failing match would be retried at each quote).
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_DEPTH_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")


def fail(message: str) -> NoReturn:
    raise ManifestError(message)


def _pairs_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            fail(f"duplicate JSON key {echo(key)}")
        out[key] = value
    return out


def _no_constants(name: str) -> NoReturn:
    fail(f"invalid JSON number {name}")


def _bounded_int(text: str) -> int:
    # Checked on the text: ``int`` of more than 4,300 digits raises with Python's own advice.
    value = int(text) if len(text.lstrip("-")) <= _INT_DIGITS else None
    if value is None or not _MIN_INT <= value <= MAX_SIZE:
        fail(f"JSON integer {echo(text, 30)} does not fit a 64-bit integer")
    return value


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        fail(f"JSON number {echo(text, 30)} is out of range")
    return value


def check_nesting(text: str, what: str = "manifest", limit: int = MAX_DEPTH) -> None:
    """Refuse JSON nested more than ``limit`` deep before a recursive parser sees it.

    Strings are cut out first (their brackets do not count); the depth is then the largest
    running sum of +1 per opening and -1 per closing bracket, all of it in C (a 4 MiB body
    takes about 0.1 s)."""
    if text.count("[") + text.count("{") <= limit:
        return
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text)).encode("ascii")
    steps = memoryview(brackets.translate(_DEPTH_STEPS)).cast("b")  # +1 / -1 as signed bytes
    if max(accumulate(steps), default=0) > limit:
        fail(f"{what} is nested more than {limit} deep")


def loads_strict(data: bytes | str, what: str = "manifest") -> Any:
    """Parse UTF-8 JSON, refusing other encodings, duplicate keys, NaN/Infinity, numbers
    that do not fit in 64 bits and nesting past ``MAX_DEPTH``."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ManifestError(f"{what} is not valid UTF-8") from exc
    else:
        text = data
    check_nesting(text, what)
    try:
        return json.loads(
            text,
            object_pairs_hook=_pairs_without_duplicates,
            parse_constant=_no_constants,
            parse_int=_bounded_int,
            parse_float=_finite_float,
        )
    except json.JSONDecodeError as exc:
        raise ManifestError(
            f"{what} is not valid JSON (line {exc.lineno}, column {exc.colno})"
        ) from None
    except RecursionError:
        raise ManifestError(f"{what} is nested too deep") from None
    except ValueError as exc:
        if isinstance(exc, ManifestError):
            raise
        raise ManifestError(f"{what} is not valid JSON") from None


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
