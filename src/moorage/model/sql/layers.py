"""Layers of a manifest, base to leaf, with their blobs and V1 details."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from moorage.db import tables as t
from moorage.domain.errors import ManifestError
from moorage.domain.manifests import ParsedManifest, parse_manifest
from moorage.domain.manifests.schema1 import STORED_MAX_SIGNATURES
from moorage.domain.records import LayerInfo, Manifest, ManifestLayer
from moorage.model.sql.legacy import LegacyImageMixin
from moorage.model.sql.manifest_rows import visible_blob


class LayerMixin(LegacyImageMixin):
    def list_manifest_layers(
        self, manifest: Manifest, include_placements: bool = False
    ) -> list[ManifestLayer] | None:
        try:
            parsed = parse_manifest(
                manifest.internal_manifest_bytes,
                manifest.media_type,
                max_signatures=STORED_MAX_SIGNATURES,  # checked at push, under the setting
            )
        except ManifestError:
            return None
        if parsed.is_list:
            return None
        with self.database.read() as conn:
            now_ms = self.now_ms()
            entries = self._chain_entries(conn, manifest, parsed)
            layers: list[ManifestLayer] = []
            for index, layer in enumerate(parsed.layers):
                entry = entries[index] if entries is not None else None
                blob = None
                if not layer.is_remote:
                    row = visible_blob(conn, manifest.repository_id, layer.digest, now_ms)
                    if row is None:
                        return None
                    blob = self.blob_record(conn, row, include_placements)
                size = layer.size if layer.size >= 0 else (blob.compressed_size if blob else None)
                info = LayerInfo(
                    layer_id=None if entry is None else entry.id,
                    blob_digest=layer.digest,
                    compressed_size=size,
                    is_remote=layer.is_remote,
                    urls=layer.urls,
                    command=None if entry is None else entry.command,
                    comment=None if entry is None else entry.comment,
                    author=None if entry is None else entry.author,
                    created_datetime=None if entry is None else entry.created,
                    media_type=layer.media_type,
                )
                layers.append(ManifestLayer(layer_info=info, blob=blob))
        return layers

    def _chain_entries(
        self, conn: Connection, manifest: Manifest, parsed: ParsedManifest
    ) -> list[Any] | None:
        """V1 details per layer (aligned with ``parsed.layers``), when the chain is known."""
        if parsed.schema1 is not None:
            return list(parsed.schema1.entries)
        image_id = conn.execute(
            select(t.manifest_legacy_image.c.legacy_image_id).where(
                t.manifest_legacy_image.c.manifest_id == manifest.id
            )
        ).scalar()
        if image_id is None:
            return None
        leaf = self.leaf_image_with_parents(conn, image_id)
        if leaf is None:
            return None
        chain = [*reversed(leaf.parents), leaf]
        # Throwaway (empty) entries of the chain carry no layer of the manifest.
        layered = [
            _ImageEntry(i.docker_image_id, i.command, i.comment, None, i.created)
            for i in chain
            if not _is_throwaway(i.v1_metadata_string)
        ]
        return layered if len(layered) == len(parsed.layers) else None


class _ImageEntry:
    __slots__ = ("author", "command", "comment", "created", "id")

    def __init__(
        self,
        id: str,
        command: str | None,
        comment: str | None,
        author: str | None,
        created: datetime | None,
    ) -> None:
        self.id, self.command, self.comment = id, command, comment
        self.author, self.created = author, created


def _is_throwaway(v1_json: str | None) -> bool:
    if not v1_json:
        return False
    try:
        data = json.loads(v1_json)
    except ValueError:
        return False
    return isinstance(data, dict) and data.get("throwaway") is True
