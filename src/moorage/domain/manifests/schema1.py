"""Docker schema 1 manifests: parsing, the V1 chain, and building (§2.11)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from moorage.domain.digest import compute_digest
from moorage.domain.manifests._fields import (
    MAX_SIZE,
    check_digest,
    fail,
    get_list,
    get_str,
    is_int,
    load_object,
    require_str,
)
from moorage.domain.manifests.jws import Schema1Signer, serialize_payload, sign_schema1
from moorage.domain.manifests.model import (
    DOCKER_LAYER_GZIP,
    UNKNOWN_SIZE,
    Descriptor,
    ManifestUnverifiedError,
    ParsedManifest,
    Schema1Info,
    V1Entry,
)
from moorage.domain.media_types import DOCKER_SCHEMA1_MANIFEST, DOCKER_SCHEMA1_SIGNED_MANIFEST

_V1_ID = re.compile(r"^[a-f0-9]{64}$")
# Docker signs with one key; a few more are plausible. Each costs a public-key
# verification, so a body with thousands of them is refused before any is read.
DEFAULT_MAX_SIGNATURES = 16
# The most the ``schema1_signature_limit`` setting allows: what re-reading a stored manifest
# passes, so that lowering the setting never makes a stored manifest unreadable.
STORED_MAX_SIGNATURES = 1000
# Images in the V1 model: each stores its ancestry, so the chain costs its length squared.
# Docker stopped at 127 images deep; a chain longer than this is refused (schema 1) or
# not made (the V1 view of a schema 2 / OCI image).
MAX_V1_CHAIN = 1000


def parse_time(value: object) -> datetime | None:
    """An RFC 3339 timestamp as an aware UTC datetime; anything unreadable gives None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):  # e.g. 9999-12-31T23:00:00-05:00 is past year 9999
        return None


def _text(value: object) -> str | None:
    """A string field stored in a text column: NUL dropped (PostgreSQL refuses it) and
    lone surrogates replaced (they have no UTF-8 form); anything else gives None."""
    if not isinstance(value, str):
        return None
    cleaned = value.replace("\x00", "")
    try:
        cleaned.encode("utf-8")
    except UnicodeEncodeError:
        cleaned = cleaned.encode("utf-8", "replace").decode("utf-8")
    return cleaned


def command_of(v1: dict[str, Any]) -> str | None:
    """``container_config.Cmd`` as JSON array text (how Quay stores a V1 command)."""
    container_config = v1.get("container_config")
    if not isinstance(container_config, dict):
        return None
    cmd = container_config.get("Cmd")
    if not cmd:
        return None
    return json.dumps(cmd, sort_keys=True)


def entry_from_v1(v1_json: str, v1: dict[str, Any], blob_digest: str) -> V1Entry:
    """A V1Entry from a decoded ``v1Compatibility`` object (id/parent already checked)."""
    size = v1.get("Size")
    parent = v1.get("parent")
    return V1Entry(
        id=v1["id"],
        parent=parent if isinstance(parent, str) and parent else None,
        blob_digest=blob_digest,
        v1_json=v1_json,
        created=parse_time(v1.get("created")),
        comment=_text(v1.get("comment")),
        command=command_of(v1),
        author=_text(v1.get("author")),
        throwaway=v1.get("throwaway") is True,
        size=size if is_int(size) and 0 <= size <= MAX_SIZE else None,
    )


def _read_entry(index: int, fs_layer: object, history: object) -> V1Entry:
    where = f"history[{index}]"
    if not isinstance(fs_layer, dict):
        fail(f"fsLayers[{index}] must be an object")
    blob_digest = check_digest(fs_layer.get("blobSum"), f"fsLayers[{index}].blobSum")
    if not isinstance(history, dict):
        fail(f"{where} must be an object")
    v1_json = require_str(history, "v1Compatibility", where)
    try:
        v1_json.encode("utf-8")  # stored as text: a lone surrogate has no UTF-8 form
    except UnicodeEncodeError:
        fail(f"{where}: 'v1Compatibility' is not valid Unicode text")
    v1 = load_object(v1_json, f"{where}.v1Compatibility")
    image_id = v1.get("id")
    if not isinstance(image_id, str) or not _V1_ID.match(image_id):
        fail(f"{where}: V1 'id' must be 64 lower-case hex characters")
    parent = v1.get("parent")
    if parent not in (None, "") and (not isinstance(parent, str) or not _V1_ID.match(parent)):
        fail(f"{where}: V1 'parent' must be 64 lower-case hex characters")
    size = v1.get("Size")
    if is_int(size) and size > MAX_SIZE:  # the database's sizes are signed 64-bit
        fail(f"{where}: V1 'Size' is larger than {MAX_SIZE}")
    return entry_from_v1(v1_json, v1, blob_digest)


def check_chain(entries: Sequence[V1Entry]) -> None:
    """Entries base → leaf: unique ids, each parent is the entry below, the base has none."""
    if not entries:
        fail("a schema1 manifest needs at least one layer")
    if len(entries) > MAX_V1_CHAIN:
        fail(f"a V1 chain of {len(entries)} images is longer than {MAX_V1_CHAIN}")
    seen: set[str] = set()
    for position, entry in enumerate(entries):
        if entry.id in seen:
            fail(f"V1 id {entry.id} appears more than once")
        seen.add(entry.id)
        expected = entries[position - 1].id if position else None
        if entry.parent != expected:
            fail(f"V1 image {entry.id} has parent {entry.parent}, expected {expected}")


def _layer(entry: V1Entry) -> Descriptor:
    size = entry.size if entry.size is not None else UNKNOWN_SIZE
    return Descriptor(media_type=DOCKER_LAYER_GZIP, digest=entry.blob_digest, size=size)


def parse_schema1(
    raw: bytes,
    body: dict[str, Any],
    declared: str,
    algorithm: str,
    *,
    max_signatures: int = DEFAULT_MAX_SIGNATURES,
) -> ParsedManifest:
    """Validate a schema1 body; ``declared`` is a schema1 type or ``application/json``.
    More than ``max_signatures`` signatures is a ``ManifestError`` (none is verified)."""
    signatures = body.get("signatures")
    key_ids: tuple[str, ...]
    if signatures in (None, []):
        if declared == DOCKER_SCHEMA1_SIGNED_MANIFEST:
            raise ManifestUnverifiedError("a prettyjws manifest must carry signatures")
        payload, key_ids = raw, ()
        content = body
    else:
        # Loads cryptography: only signed schema1 manifests pay for it.
        from moorage.domain.manifests.jws_verify import verify_signed_body

        payload, key_ids = verify_signed_body(raw, body, max_signatures=max_signatures)
        content = {key: value for key, value in body.items() if key != "signatures"}
    if declared not in (DOCKER_SCHEMA1_MANIFEST, DOCKER_SCHEMA1_SIGNED_MANIFEST):
        declared = DOCKER_SCHEMA1_SIGNED_MANIFEST if key_ids else DOCKER_SCHEMA1_MANIFEST

    version = content.get("schemaVersion")
    if not is_int(version) or version != 1:
        fail(f"schemaVersion must be 1 for {declared}, got {version!r}")
    if "mediaType" in content and content["mediaType"] != declared:
        fail(f"manifest mediaType {content['mediaType']!r} does not match {declared!r}")
    name = require_str(content, "name", "manifest")
    tag = require_str(content, "tag", "manifest")
    architecture = get_str(content, "architecture", "manifest") or ""
    fs_layers = get_list(content, "fsLayers", "manifest", required=True)
    history = get_list(content, "history", "manifest", required=True)
    if len(fs_layers) != len(history):
        fail(f"{len(fs_layers)} fsLayers but {len(history)} history entries")
    if len(history) > MAX_V1_CHAIN:
        fail(f"{len(history)} layers, more than a schema 1 manifest may have ({MAX_V1_CHAIN})")
    # Schema1 lists the top layer first; everything we hand out runs base → leaf.
    entries = tuple(
        _read_entry(index, fs_layers[index], history[index])
        for index in reversed(range(len(history)))
    )
    check_chain(entries)
    return ParsedManifest(
        media_type=declared,
        digest=compute_digest(payload, algorithm),
        raw=raw,
        layers=tuple(_layer(entry) for entry in entries),
        schema1=Schema1Info(
            name=name,
            tag=tag,
            architecture=architecture,
            entries=entries,
            payload=payload,
            key_ids=key_ids,
        ),
    )


def build_schema1_manifest(
    name: str,
    tag: str,
    architecture: str,
    entries: Sequence[V1Entry],
    signer: Schema1Signer | None,
) -> bytes:
    """A schema1 manifest for ``entries`` (base → leaf), signed unless ``signer`` is None."""
    check_chain(entries)
    top_first = list(reversed(entries))
    payload = {
        "schemaVersion": 1,
        "name": name,
        "tag": tag,
        "architecture": architecture,
        "fsLayers": [{"blobSum": entry.blob_digest} for entry in top_first],
        "history": [{"v1Compatibility": entry.v1_json} for entry in top_first],
    }
    if signer is None:
        return serialize_payload(payload)
    return sign_schema1(payload, signer)
