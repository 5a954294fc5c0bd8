"""``moorage gc`` and ``moorage worker gc`` as an operator runs them: real subprocesses over a
registry that real HTTP requests filled (SQLite and disk)."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from starlette.testclient import TestClient

from moorage.app import build
from moorage.config import load_settings
from support.cli import moorage

NO_WINDOWS = {"blob_grace_s": 0, "manifest_grace_s": 0, "tag_grace_s": 0}


def _config(tmp_path: Path) -> Path:
    config = {
        "data_dir": str(tmp_path / "data"),
        "namespace_default_removed_tag_expiration_s": 0,
        "push_temp_tag_expiration_s": 1,  # links live a second
        "gc": {**NO_WINDOWS, "enabled": False},
    }
    path = tmp_path / "moorage.yaml"
    path.write_text(json.dumps(config))
    return path


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _push_and_delete(config: Path, tag: str = "v1", seed: str = "") -> list[str]:
    """Pushes an image over HTTP, then deletes its tag: everything of it is garbage."""
    application = build(load_settings(config))
    config_blob = json.dumps({"os": "linux", "seed": seed}).encode()
    layer = f"a layer for the collector {seed}".encode() * 100
    with TestClient(application.asgi) as client:
        for data in (config_blob, layer):
            url = f"/v2/acme/app/blobs/uploads/?digest={_digest(data)}"
            assert client.post(url, content=data).status_code == 201
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": _digest(config_blob),
                "size": len(config_blob),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": _digest(layer),
                    "size": len(layer),
                }
            ],
        }
        headers = {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}
        put = client.put(
            f"/v2/acme/app/manifests/{tag}", content=json.dumps(manifest), headers=headers
        )
        assert put.status_code == 201
        assert client.delete(f"/v2/acme/app/manifests/{tag}").status_code == 202
    application.close()
    time.sleep(1.1)  # past the links and every (zero) window
    return [_digest(config_blob), _digest(layer)]


def _stored(tmp_path: Path) -> set[str]:
    root = tmp_path / "data" / "storage" / "blobs"
    return {f"sha256:{path.name}" for path in root.rglob("*") if path.is_file()}


def test_gc_dry_run_reports_and_deletes_nothing_then_gc_deletes(tmp_path: Path) -> None:
    config = _config(tmp_path)
    blobs = _push_and_delete(config)
    assert _stored(tmp_path) == set(blobs)
    dry = moorage("gc", "--dry-run", "--output", "json", "--config", str(config))
    assert dry.returncode == 0, dry.stderr
    report = json.loads(dry.stdout.strip().splitlines()[-1])
    assert report["job"] == "gc" and report["dry_run"] is True
    assert (report["tags"], report["manifests"], report["blobs"]) == (1, 1, 2)
    assert report["blobs_by_location"] == {"local": 2}
    assert _stored(tmp_path) == set(blobs)  # nothing deleted
    real = moorage("gc", "--output", "json", "--config", str(config))
    assert real.returncode == 0, real.stderr
    done = json.loads(real.stdout.strip().splitlines()[-1])
    assert done["dry_run"] is False
    for key in ("tags", "manifests", "blobs", "bytes", "bytes_by_location"):
        assert done[key] == report[key], key
    assert done["objects"] == 2
    assert _stored(tmp_path) == set()
    again = moorage("gc", "--config", str(config))
    assert again.returncode == 0
    assert "gc deleted: 0 objects, 0 repositories, 0 tags, 0 manifests" in again.stdout


def test_gc_shows_progress_on_stderr_when_asked(tmp_path: Path) -> None:
    config = _config(tmp_path)
    _push_and_delete(config)
    result = moorage("gc", "--progress", "always", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert "blobs" in result.stderr and "manifests" in result.stderr
    assert "gc deleted:" in result.stdout and "local: 2 objects" in result.stdout


def test_worker_gc_runs_one_cycle_and_reports_json(tmp_path: Path) -> None:
    config = _config(tmp_path)
    _push_and_delete(config)
    result = moorage("worker", "gc", "--config", str(config), "--output", "json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["job"] == "gc" and report["blobs"] == 2
    assert _stored(tmp_path) == set()


def test_gc_usage_errors_exit_2(tmp_path: Path) -> None:
    assert moorage("gc", "--output", "yaml").returncode == 2
    assert moorage("worker", "gc", "--interval", "0").returncode == 2
    assert moorage("gc", "--help").returncode == 0


def test_two_gc_processes_at_once_on_postgresql_share_the_work(
    tmp_path: Path, fresh_postgres_url: str
) -> None:
    import subprocess
    import sys

    from support.cli import clean_env

    config = _config(tmp_path)
    settings = json.loads(config.read_text())
    settings |= {"database_url": fresh_postgres_url, "auto_migrate": True}
    config.write_text(json.dumps(settings))
    pushed: set[str] = set()
    for number in range(8):
        pushed |= set(_push_and_delete(config, tag=f"t{number}", seed=str(number)))
    assert _stored(tmp_path) == pushed
    argv = [sys.executable, "-m", "moorage", "gc", "--output", "json", "--config", str(config)]
    runs = [
        subprocess.Popen(
            argv, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], [err for _, err in outputs]
    reports = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    assert sum(r["manifests"] for r in reports) == 8
    final = moorage("gc", "--output", "json", "--config", str(config))  # what one skipped
    assert final.returncode == 0, final.stderr
    assert (
        sum(r["blobs"] for r in reports) + json.loads(final.stdout.splitlines()[-1])["blobs"] == 16
    )
    assert _stored(tmp_path) == set()
