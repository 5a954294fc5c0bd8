"""The GC inside ``moorage serve`` (issue 14): two worker processes, each running a cycle
every second (auth on, SQLite and disk), collect a deleted image's blobs from disk while a
live image sharing a layer keeps pulling bit-identical, and a dry run's report over HTTP-
pushed content finds nothing left once the server's GC ran."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import httpx
import pytest

from support.cli import moorage
from support.e2e_clients import start_registry

pytestmark = pytest.mark.e2e

MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _push(client: httpx.Client, repo: str, tag: str, layers: list[bytes]) -> list[str]:
    config = json.dumps({"os": "linux", "tag": tag}).encode()
    for data in (config, *layers):
        answer = client.post(f"/v2/{repo}/blobs/uploads/?digest={_digest(data)}", content=data)
        assert answer.status_code == 201, answer.text
    body = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": _digest(config),
            "size": len(config),
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": _digest(d),
                "size": len(d),
            }
            for d in layers
        ],
    }
    answer = client.put(
        f"/v2/{repo}/manifests/{tag}", content=json.dumps(body), headers={"Content-Type": MANIFEST}
    )
    assert answer.status_code == 201, answer.text
    return [_digest(config)] + [_digest(d) for d in layers]


def _stored(data_dir: Path) -> set[str]:
    root = data_dir / "storage" / "blobs"
    return {f"sha256:{p.name}" for p in root.rglob("*") if p.is_file()}


def test_the_servers_own_gc_collects_while_live_images_keep_pulling(tmp_path: Path) -> None:
    config = tmp_path / "moorage.yaml"
    config.write_text(
        json.dumps(
            {
                "namespace_default_removed_tag_expiration_s": 0,
                "push_temp_tag_expiration_s": 2,
                "gc": {
                    "interval_s": 1,
                    "blob_grace_s": 0,
                    "manifest_grace_s": 0,
                    "tag_grace_s": 0,
                },
            }
        )
    )
    shared = b"a base layer both images use" * 50
    with start_registry(
        tmp_path / "server", extra_args=["--config", str(config), "--workers", "2"], auth=True
    ) as server:
        with httpx.Client(base_url=server.base_url, auth=server.credentials, timeout=30) as client:
            kept = _push(client, "acme/app", "kept", [shared, b"kept's own layer"])
            dropped = _push(client, "acme/app", "dropped", [shared, b"dropped's own layer"])
            assert client.delete("/v2/acme/app/manifests/dropped").status_code == 202
            garbage = set(dropped) - set(kept)
            deadline = time.monotonic() + 30
            while garbage & _stored(server.data_dir) and time.monotonic() < deadline:
                time.sleep(0.5)
            assert not garbage & _stored(server.data_dir), server.log_tail()
            assert set(kept) <= _stored(server.data_dir)
            time.sleep(3)  # past the links too: only the manifest holds them now
            manifest = client.get("/v2/acme/app/manifests/kept", headers={"Accept": MANIFEST})
            assert manifest.status_code == 200
            for digest in kept:
                blob = client.get(f"/v2/acme/app/blobs/{digest}", follow_redirects=True)
                assert blob.status_code == 200 and _digest(blob.content) == digest
            assert client.get("/v2/acme/app/manifests/dropped").status_code == 404
        dry = moorage(
            "gc",
            "--dry-run",
            "--output",
            "json",
            "--config",
            str(config),
            env={"MOORAGE_DATA_DIR": str(server.data_dir)},
        )
        assert dry.returncode == 0, dry.stderr
        assert json.loads(dry.stdout.splitlines()[-1])["blobs"] == 0  # the server's GC did it
