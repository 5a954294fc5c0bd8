"""Small protocol helpers for in-process /v2 tests."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from starlette.testclient import TestClient

from moorage.domain.manifests import V1Entry

SCHEMA2 = "application/vnd.docker.distribution.manifest.v2+json"
SCHEMA2_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def upload(client: TestClient, name: str, data: bytes) -> str:
    digest = sha256(data)
    response = client.post(f"/v2/{name}/blobs/uploads/?digest={digest}", content=data)
    assert response.status_code == 201, response.text
    return digest


def error_codes(response: Any) -> list[str]:
    return [entry["code"] for entry in response.json()["errors"]]


def image(
    client: TestClient,
    name: str,
    layers: list[bytes],
    *,
    labels: dict[str, str] | None = None,
    media_type: str = SCHEMA2,
    arch: str = "amd64",
) -> tuple[bytes, str]:
    """Uploads config and layers, returns (manifest bytes, media type)."""
    config = json.dumps(
        {
            "architecture": arch,
            "os": "linux",
            "config": {"Labels": labels or {}},
            "rootfs": {"type": "layers", "diff_ids": [sha256(layer) for layer in layers]},
            "history": [{"created_by": f"step {i}"} for i in range(len(layers))],
        }
    ).encode()
    config_type = (
        "application/vnd.docker.container.image.v1+json"
        if media_type == SCHEMA2
        else "application/vnd.oci.image.config.v1+json"
    )
    body = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {
            "mediaType": config_type,
            "digest": upload(client, name, config),
            "size": len(config),
        },
        "layers": [
            {"mediaType": LAYER, "digest": upload(client, name, layer), "size": len(layer)}
            for layer in layers
        ],
    }
    return json.dumps(body, indent=3).encode(), media_type


def put_manifest(
    client: TestClient, name: str, reference: str, body: bytes, media_type: str
) -> Any:
    return client.put(
        f"/v2/{name}/manifests/{reference}", content=body, headers={"Content-Type": media_type}
    )


def base_v1_entry(layer: bytes, image_id: str) -> V1Entry:
    """A one-image V1 chain entry for ``layer`` (schema 1 manifests in tests)."""
    return V1Entry(
        id=image_id,
        parent=None,
        blob_digest=sha256(layer),
        v1_json=json.dumps({"id": image_id, "architecture": "amd64"}),
        created=None,
        comment=None,
        command=None,
        author=None,
        throwaway=False,
        size=len(layer),
    )
