"""Known content the fuzzers aim at, so that generated requests also reach the code behind
"found": blobs, a config with labels, an image, an index and their tags."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from starlette.testclient import TestClient

REPO = "fuzz/app"
OTHER = "fuzz/other"
LAYER = b"fuzz layer bytes " * 64
CONFIG = json.dumps(
    {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Labels": {"org.example": "yes", "quay.expires-after": "2h"}},
        "rootfs": {"type": "layers", "diff_ids": []},
    }
).encode()
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


LAYER_DIGEST = sha256(LAYER)
CONFIG_DIGEST = sha256(CONFIG)


def image_manifest() -> dict[str, Any]:
    return {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": CONFIG_DIGEST, "size": len(CONFIG)},
        "layers": [{"mediaType": OCI_LAYER, "digest": LAYER_DIGEST, "size": len(LAYER)}],
    }


def index_manifest(child_digest: str, child_size: int) -> dict[str, Any]:
    return {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": child_digest,
                "size": child_size,
                "platform": {"architecture": "amd64", "os": "linux"},
            }
        ],
    }


def schema1_manifest() -> dict[str, Any]:
    """An unsigned schema 1 manifest over the seeded layer (valid as it is)."""
    v1 = {"id": "a" * 64, "architecture": "amd64", "Size": len(LAYER)}
    return {
        "schemaVersion": 1,
        "name": REPO,
        "tag": "v1",
        "architecture": "amd64",
        "fsLayers": [{"blobSum": LAYER_DIGEST}],
        "history": [{"v1Compatibility": json.dumps(v1)}],
    }


IMAGE = json.dumps(image_manifest()).encode()
IMAGE_DIGEST = sha256(IMAGE)
INDEX = json.dumps(index_manifest(IMAGE_DIGEST, len(IMAGE))).encode()
INDEX_DIGEST = sha256(INDEX)
KNOWN_DIGESTS = (LAYER_DIGEST, CONFIG_DIGEST, IMAGE_DIGEST, INDEX_DIGEST)


@dataclass(frozen=True)
class Seeded:
    client: TestClient
    upload_id: str  # a session left open in REPO


def seed_registry(client: TestClient) -> Seeded:
    for repo in (REPO, OTHER):
        for blob in (LAYER, CONFIG):
            created = client.post(f"/v2/{repo}/blobs/uploads/?digest={sha256(blob)}", content=blob)
            assert created.status_code == 201, created.text
        for reference, body, media_type in (
            ("latest", IMAGE, OCI_MANIFEST),
            ("multi", INDEX, OCI_INDEX),
        ):
            pushed = client.put(
                f"/v2/{repo}/manifests/{reference}",
                content=body,
                headers={"Content-Type": media_type},
            )
            assert pushed.status_code == 201, pushed.text
    started = client.post(f"/v2/{REPO}/blobs/uploads/")
    assert started.status_code == 202
    return Seeded(client, started.headers["Docker-Upload-UUID"])
