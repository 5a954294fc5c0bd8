"""``moorage worker``: replication and upload cleanup as an operator runs them."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from starlette.testclient import TestClient

from moorage.app import build
from moorage.config import load_settings
from support.cli import moorage


def _config(tmp_path: Path) -> Path:
    config = {
        "data_dir": str(tmp_path / "data"),
        "storage": {
            "default_location": "near",
            "locations": {
                "near": {"driver": "filesystem", "root": str(tmp_path / "near")},
                "far": {"driver": "filesystem", "root": str(tmp_path / "far")},
            },
        },
    }
    path = tmp_path / "moorage.yaml"
    path.write_text(json.dumps(config))
    return path


def test_replicate_copies_pushed_blobs_and_reports_json(tmp_path: Path) -> None:
    config = _config(tmp_path)
    application = build(load_settings(config))
    data = b"replicate me" * 1000
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with TestClient(application.asgi) as client:
        assert (
            client.post(f"/v2/acme/app/blobs/uploads/?digest={digest}", content=data).status_code
            == 201
        )
    application.close()
    result = moorage("worker", "replicate", "--config", str(config), "--output", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {
        "job": "replicate",
        "copied": 1,
        "failed": 0,
    }
    copy = tmp_path / "far" / "blobs" / "sha256" / digest[7:9] / digest[7:]
    assert copy.read_bytes() == data
    again = moorage("worker", "replicate", "--config", str(config))
    assert again.returncode == 0 and "copied 0" in again.stdout


def test_clean_uploads_keeps_recent_sessions(tmp_path: Path) -> None:
    config = _config(tmp_path)
    application = build(load_settings(config))
    with TestClient(application.asgi) as client:
        location = client.post("/v2/acme/app/blobs/uploads/").headers["Location"]
        client.patch(location, content=b"half an upload")
    application.close()
    result = moorage("worker", "clean-uploads", "--config", str(config), "-o", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1])["sessions"] == 0
    result = moorage("worker", "clean-uploads", "--config", str(config), "--max-age-hours", "0")
    assert result.returncode == 0 and "sessions 1" in result.stdout


def test_worker_usage_errors_exit_2() -> None:
    assert moorage("worker", "replicate", "--interval", "0").returncode == 2
    assert moorage("worker", "--help").returncode == 0
