"""The only place storage keys are built and checked.

A key is a ``/``-separated relative path of components made of ``[A-Za-z0-9._-]`` that do not
start with a dot (so no ``.``/``..``, no hidden or temporary files). Empty components, absolute
paths, backslashes and NUL are refused. The top-level ``_uploads`` component is reserved for
upload sessions. Raw user strings are never joined into keys: digests and UUIDs are parsed first.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

from moorage.domain.digest import Digest
from moorage.domain.errors import InvalidDigestError
from moorage.storage.driver import InvalidKeyError

UPLOADS_DIR = "_uploads"
QUARANTINE_DIR = "_quarantine"
MAX_KEY_LENGTH = 1024

_COMPONENT = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
_SESSION_ID = re.compile(r"[0-9a-f]{32}")


def validate_key(key: str) -> str:
    """Return ``key`` unchanged if it is a well-formed object key, else raise InvalidKeyError."""
    _check_path(key, what="key")
    if key.split("/", 1)[0] == UPLOADS_DIR:
        raise InvalidKeyError(f"storage key {key!r} is under the reserved {UPLOADS_DIR!r}")
    return key


def validate_prefix(prefix: str) -> str:
    """Like :func:`validate_key`, but ``""`` (everything) is allowed."""
    return prefix if prefix == "" else validate_key(prefix)


def validate_session_id(session_id: str) -> str:
    """Upload session ids are uuid4 hex (32 lower-case hex digits)."""
    if not isinstance(session_id, str) or not _SESSION_ID.fullmatch(session_id):
        raise InvalidKeyError(f"malformed upload session id: {session_id!r}")
    return session_id


def new_session_id() -> str:
    return uuid.uuid4().hex


def blob_key(digest: str) -> str:
    """``blobs/<alg>/<first two hex>/<hex>``; raises InvalidDigestError for a bad digest.

    No directory per blob: on disk each new directory costs an fsync of its parent on every
    push, and the two-hex fan-out already keeps directories small."""
    parsed = Digest.parse(digest)
    return f"blobs/{parsed.algorithm}/{parsed.hex[:2]}/{parsed.hex}"


def digest_of_blob_key(key: str) -> str | None:
    """The digest a :func:`blob_key` names, or None for any other key."""
    parts = key.split("/")
    if len(parts) != 4 or parts[0] != "blobs" or parts[2] != parts[3][:2]:
        return None
    try:
        return str(Digest.parse(f"{parts[1]}:{parts[3]}"))
    except InvalidDigestError:
        return None


def quarantine_key(digest: str, moment: datetime) -> str:
    """``_quarantine/<alg>/<hex>/<UTC time>``: where bytes that do not match their digest are
    kept for inspection. Outside ``blobs/``, so never listed or served as a blob; one key per
    quarantine, so a blob corrupted twice keeps both copies."""
    parsed = Digest.parse(digest)
    stamp = moment.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    return f"{QUARANTINE_DIR}/{parsed.algorithm}/{parsed.hex}/{stamp}"


def blob_fanout_prefixes(algorithm: str) -> list[str]:
    """The 256 directories ``blob_key`` spreads the blobs of ``algorithm`` over, in order."""
    if not _COMPONENT.fullmatch(algorithm):
        raise InvalidKeyError(f"malformed digest algorithm: {algorithm!r}")
    return [f"blobs/{algorithm}/{value:02x}" for value in range(256)]


def derived_key(storage_uuid: str) -> str:
    """``derived/<first two hex>/<uuid>/data`` for a derived image (squashed layer, etc.)."""
    try:
        parsed = uuid.UUID(storage_uuid)
    except (ValueError, TypeError, AttributeError) as exc:
        raise InvalidKeyError(f"malformed storage uuid: {storage_uuid!r}") from exc
    if storage_uuid not in (str(parsed), parsed.hex):
        raise InvalidKeyError(f"non-canonical storage uuid: {storage_uuid!r}")
    return f"derived/{parsed.hex[:2]}/{parsed}/data"


def upload_prefix(session_id: str) -> str:
    """``_uploads/<session id>``: where a driver may keep the data of one upload session."""
    return f"{UPLOADS_DIR}/{validate_session_id(session_id)}"


def _check_path(key: str, *, what: str) -> None:
    if not isinstance(key, str):
        raise InvalidKeyError(f"storage {what} must be a string, not {type(key).__name__}")
    if not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidKeyError(f"storage {what} must have 1 to {MAX_KEY_LENGTH} characters")
    for component in key.split("/"):
        if not _COMPONENT.fullmatch(component):
            raise InvalidKeyError(f"malformed storage {what} {key!r} (component {component!r})")
