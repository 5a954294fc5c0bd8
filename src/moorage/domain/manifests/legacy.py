"""Schema2/OCI image → V1 chain and schema1 manifest, by Quay's scheme (§2.12).

V1 ids come from one running SHA-256 over the config history, base first. For history
entry ``i`` the hash is fed ``json.dumps(entry)`` (Python defaults: original key order,
``", "`` / ``": "`` separators, ASCII escapes), ``|``, ``i``, ``|``, the blob digest
(the gzipped empty tar for ``empty_layer`` entries) and ``||``; the id of entry ``i`` is
the hex digest at that point. Ids therefore match a database migrated from Quay.

Configs without a ``history`` (allowed by OCI) get one synthesized entry per layer, the
way Quay handles OCI images: the hash is fed only ``<layer digest>||`` per layer, and no
per-layer metadata (created, command…) exists except what the top entry takes from the
config itself.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from moorage.domain.digest import EMPTY_LAYER_BYTES, EMPTY_LAYER_DIGEST
from moorage.domain.manifests._fields import fail, load_object
from moorage.domain.manifests.jws import Schema1Signer
from moorage.domain.manifests.model import Descriptor, V1Entry
from moorage.domain.manifests.schema1 import MAX_V1_CHAIN, build_schema1_manifest, entry_from_v1

EMPTY_LAYER_SIZE = len(EMPTY_LAYER_BYTES)
_SCHEMA2_ONLY_KEYS = ("history", "rootfs")


def load_image_config(config_bytes: bytes) -> dict[str, Any]:
    """An image config (OCI or Docker) as a JSON object; anything else, or one nested
    deeper than the JSON reader allows, is a ``ManifestError``."""
    return load_object(config_bytes, "image config")


def _as_config(config: bytes | Mapping[str, Any]) -> Mapping[str, Any]:
    return load_image_config(config) if isinstance(config, bytes | bytearray) else config


def _v1_compatibility(
    config: Mapping[str, Any],
    history: dict[str, Any],
    *,
    v1_id: str,
    parent: str | None,
    is_top: bool,
    size: int,
) -> dict[str, Any]:
    """The ``v1Compatibility`` object of one entry (§2.12 step 4, Quay's field order)."""
    # Only top-level keys change: a shallow copy leaves the caller's config as it was.
    v1: dict[str, Any] = dict(config) if is_top else {}
    v1["id"] = v1_id
    if parent is not None:
        v1["parent"] = parent
    for key in ("created", "author", "comment"):
        value = history.get(key)
        if key not in v1 and value:
            v1[key] = value
    if "throwaway" not in v1 and history.get("empty_layer") is True:
        v1["throwaway"] = True
    if "container_config" not in v1 and "created_by" in history:
        v1["container_config"] = {"Cmd": [history["created_by"]]}
    v1["Size"] = size
    for key in _SCHEMA2_ONLY_KEYS:
        v1.pop(key, None)
    return v1


def _history_of(config: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    history = config.get("history")
    if history is None or history == []:
        return None
    if not isinstance(history, list):
        fail("config 'history' must be an array")
    for index, item in enumerate(history):
        if not isinstance(item, dict):
            fail(f"config history[{index}] must be an object")
        if "empty_layer" in item and not isinstance(item["empty_layer"], bool):
            fail(f"config history[{index}].empty_layer must be a boolean")
    return history


def _pair_history(
    history: list[dict[str, Any]], layers: Sequence[Descriptor]
) -> list[tuple[dict[str, Any], str, int, bytes]]:
    """(history entry, blob digest, size, bytes fed to the id hash) per entry, base first."""
    out: list[tuple[dict[str, Any], str, int, bytes]] = []
    cursor = 0
    for index, item in enumerate(history):
        if item.get("empty_layer") is True:
            digest, size = EMPTY_LAYER_DIGEST, EMPTY_LAYER_SIZE
        else:
            if cursor >= len(layers):
                fail(f"config history[{index}] has no matching layer (only {len(layers)})")
            digest, size = layers[cursor].digest, layers[cursor].size
            cursor += 1
        fed = f"{json.dumps(item)}|{index}|{digest}||".encode()
        out.append((item, digest, size, fed))
    if cursor != len(layers):
        fail(f"config history covers {cursor} layers but the manifest has {len(layers)}")
    return out


def legacy_chain_from_config(
    config_bytes: bytes | Mapping[str, Any], layers: Sequence[Descriptor]
) -> tuple[V1Entry, ...]:
    """The V1 chain (base → leaf) of a schema2/OCI image, with deterministic ids. The
    config comes as its bytes or as ``load_image_config`` made them."""
    config = _as_config(config_bytes)
    history = _history_of(config)
    paired: list[tuple[dict[str, Any], str, int, bytes]]
    if history is None:
        if not layers:
            fail("an image without history or layers has no V1 chain")
        paired = [({}, layer.digest, layer.size, f"{layer.digest}||".encode()) for layer in layers]
    else:
        if len(history) > MAX_V1_CHAIN:
            fail(
                f"config history has {len(history)} entries, more than a V1 chain ({MAX_V1_CHAIN})"
            )
        paired = _pair_history(history, layers)
    if len(paired) > MAX_V1_CHAIN:
        fail(f"{len(paired)} layers, more than a V1 chain may have ({MAX_V1_CHAIN})")

    running = hashlib.sha256()
    entries: list[V1Entry] = []
    parent: str | None = None
    for position, (item, digest, size, fed) in enumerate(paired):
        running.update(fed)
        v1_id = running.hexdigest()
        v1 = _v1_compatibility(
            config,
            item,
            v1_id=v1_id,
            parent=parent,
            is_top=position == len(paired) - 1,
            size=size,
        )
        entries.append(entry_from_v1(json.dumps(v1), v1, digest))
        parent = v1_id
    return tuple(entries)


def schema1_from_image(
    name: str,
    tag: str,
    config_bytes: bytes | Mapping[str, Any],
    layers: Sequence[Descriptor],
    signer: Schema1Signer | None,
) -> bytes:
    """The signed schema1 rendering of a schema2/OCI image (§2.12 steps 2 to 6)."""
    if any(layer.urls for layer in layers):
        fail("images with remote (foreign) layers cannot be converted to schema1")
    config = _as_config(config_bytes)
    entries = legacy_chain_from_config(config, layers)
    architecture = config.get("architecture")
    if not isinstance(architecture, str) or not architecture:
        architecture = "amd64"
    return build_schema1_manifest(name, tag, architecture, entries, signer)
