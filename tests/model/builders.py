"""Helpers that put realistic content into a model: blobs, images, lists, V1 chains."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

from moorage.domain.manifests import Descriptor, V1Entry, legacy_chain_from_config
from moorage.domain.media_types import (
    DOCKER_SCHEMA2_CONFIG,
    DOCKER_SCHEMA2_MANIFEST,
    OCI_IMAGE_INDEX,
    OCI_IMAGE_MANIFEST,
)
from moorage.domain.records import Blob, LegacyImage, Manifest, RepositoryReference
from moorage.model.sql import SqlRegistryModel

LAYER_TYPE = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def push_blob(
    model: SqlRegistryModel,
    repo: RepositoryReference,
    data: bytes,
    *,
    location: str = "local",
    expiration_s: int = 3600,
) -> Blob:
    """What a finished upload leaves in the model: a committed, temp-linked blob."""
    upload = model.create_blob_upload(repo, str(uuid.uuid4()), location, {})
    assert upload is not None
    upload = model.update_blob_upload(upload, None, None, None, {}, len(data), 1, None)
    assert upload is not None
    blob = model.commit_blob_upload(upload, digest_of(data), expiration_s)
    assert blob is not None
    return blob


@dataclass
class Image:
    manifest: Manifest
    config: bytes
    layers: list[bytes]


def image_config(
    layer_count: int, *, labels: dict[str, str] | None = None, seed: str = ""
) -> bytes:
    history = [
        {"created": f"2026-01-0{i + 1}T00:00:00Z", "created_by": f"/bin/sh -c step {seed}{i}"}
        for i in range(layer_count)
    ]
    config: dict[str, Any] = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Labels": labels or {}},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{i:064x}" for i in range(layer_count)]},
        "history": history,
    }
    return json.dumps(config).encode()


def push_image(
    model: SqlRegistryModel,
    repo: RepositoryReference,
    layers: list[bytes],
    *,
    labels: dict[str, str] | None = None,
    seed: str = "",
    media_type: str = DOCKER_SCHEMA2_MANIFEST,
    remote_layer: bool = False,
) -> Image:
    """Pushes blobs and a schema2 (or OCI) image manifest with its legacy chain."""
    config = image_config(len(layers) + (1 if remote_layer else 0), labels=labels, seed=seed)
    push_blob(model, repo, config)
    descriptors = []
    for data in layers:
        push_blob(model, repo, data)
        descriptors.append({"mediaType": LAYER_TYPE, "digest": digest_of(data), "size": len(data)})
    if remote_layer:
        foreign = b"foreign layer " + seed.encode()
        descriptors.append(
            {
                "mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
                "digest": digest_of(foreign),
                "size": len(foreign),
                "urls": ["https://example.invalid/layer"],
            }
        )
    config_type = (
        DOCKER_SCHEMA2_CONFIG
        if media_type == DOCKER_SCHEMA2_MANIFEST
        else ("application/vnd.oci.image.config.v1+json")
    )
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": {"mediaType": config_type, "digest": digest_of(config), "size": len(config)},
            "layers": descriptors,
        },
        indent=2,
    ).encode()
    chain = legacy_chain_from_config(
        config,
        [
            Descriptor(d["mediaType"], d["digest"], d["size"], tuple(d.get("urls", ())))
            for d in descriptors
        ],
    )
    manifest = model.create_manifest(repo, body, media_type, legacy_chain=chain)
    return Image(manifest, config, layers)


def push_index(
    model: SqlRegistryModel, repo: RepositoryReference, children: list[tuple[Manifest, str]]
) -> Manifest:
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_IMAGE_INDEX,
            "manifests": [
                {
                    "mediaType": child.media_type,
                    "digest": child.digest,
                    "size": len(child.internal_manifest_bytes),
                    "platform": {"os": "linux", "architecture": arch},
                }
                for child, arch in children
            ],
        }
    ).encode()
    return model.create_manifest(repo, body, OCI_IMAGE_INDEX)


def push_artifact(
    model: SqlRegistryModel, repo: RepositoryReference, subject: Manifest
) -> Manifest:
    empty = b"{}"
    push_blob(model, repo, empty)
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_IMAGE_MANIFEST,
            "artifactType": "application/vnd.example.sbom",
            "config": {
                "mediaType": "application/vnd.oci.empty.v1+json",
                "digest": digest_of(empty),
                "size": 2,
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.empty.v1+json",
                    "digest": digest_of(empty),
                    "size": 2,
                }
            ],
            "subject": {
                "mediaType": subject.media_type,
                "digest": subject.digest,
                "size": len(subject.internal_manifest_bytes),
            },
        }
    ).encode()
    return model.create_manifest(repo, body, OCI_IMAGE_MANIFEST)


def push_v1_chain(
    model: SqlRegistryModel, repo: RepositoryReference, names: list[str], *, prefix: str = ""
) -> LegacyImage:
    """A V1 push: one image per name (base first), ids derived from the names."""
    entries = []
    parent: str | None = None
    for name in names:
        data = f"v1 layer {prefix}{name}".encode()
        push_blob(model, repo, data)
        image_id = hashlib.sha256(f"{prefix}{name}".encode()).hexdigest()
        v1: dict[str, Any] = {
            "id": image_id,
            "created": "2026-02-01T00:00:00Z",
            "container_config": {"Cmd": ["/bin/sh", "-c", f"echo {name}"]},
            "architecture": "amd64",
            "os": "linux",
        }
        if parent:
            v1["parent"] = parent
        entries.append(
            V1Entry(
                id=image_id,
                parent=parent,
                blob_digest=digest_of(data),
                v1_json=json.dumps(v1),
                created=None,
                comment=f"comment {name}",
                command=json.dumps(v1["container_config"]["Cmd"]),
                author=None,
                throwaway=False,
                size=len(data),
            )
        )
        parent = image_id
    return model.create_legacy_images(repo, entries)
