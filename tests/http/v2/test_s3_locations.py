"""The HTTP API over an S3 location (a real SeaweedFS server): presigned redirects, health."""

from __future__ import annotations

import hashlib
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from moorage.app import build
from moorage.config import load_settings
from support.s3servers import S3Server, seaweedfs_s3, unique_prefix  # noqa: F401 (fixture)


@pytest.fixture
def s3_client(seaweedfs_s3: S3Server, tmp_path: Path) -> Iterator[TestClient]:  # noqa: F811
    options = seaweedfs_s3.driver_options(unique_prefix())
    settings = load_settings(
        data_dir=tmp_path / "data",
        storage={
            "default_location": "s3",
            "locations": {"s3": {"driver": "s3", "presign_redirects": True, **options}},
        },
    )
    application = build(settings)
    with TestClient(application.asgi) as client:
        yield client
    application.close()


def test_blob_get_redirects_to_a_presigned_url(s3_client: TestClient) -> None:
    data = b"served straight from the bucket" * 1000
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    assert (
        s3_client.post(f"/v2/acme/app/blobs/uploads/?digest={digest}", content=data).status_code
        == 201
    )
    response = s3_client.get(f"/v2/acme/app/blobs/{digest}", follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["Docker-Content-Digest"] == digest
    with urllib.request.urlopen(response.headers["Location"], timeout=30) as presigned:
        assert presigned.read() == data
    head = s3_client.head(f"/v2/acme/app/blobs/{digest}")
    assert head.status_code == 200 and head.headers["Content-Length"] == str(len(data))
    ranged = s3_client.get(f"/v2/acme/app/blobs/{digest}", headers={"Range": "bytes=0-9"})
    assert ranged.status_code == 206 and ranged.content == data[:10]


def test_health_reports_the_s3_location(s3_client: TestClient) -> None:
    response = s3_client.get("/healthz")
    assert response.status_code == 200
    assert "storage" in response.text
