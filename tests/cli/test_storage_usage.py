"""``moorage storage usage``: what is stored per location, as an operator reads it (a real
subprocess over real files and rows, SQLite and PostgreSQL), and ``GET /healthz/storage``."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from moorage.app import build
from moorage.config import load_settings
from support.cli import moorage

LAYERS = (b"first layer " * 300, b"second layer " * 200, b"a small one")


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Stored:
    config: Path
    bytes: int
    partial: int  # bytes in the one open upload session


@pytest.fixture(params=["sqlite", "postgres"])
def stored(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stored]:
    settings: dict[str, object] = {
        "data_dir": str(tmp_path / "data"),
        # The pushed blobs' temporary links expire at once; the GC grace window still keeps
        # them unless a test shortens it.
        "push_temp_tag_expiration_s": 0,
        "storage": {
            "default_location": "near",
            "locations": {
                "near": {"driver": "filesystem", "root": str(tmp_path / "near")},
                "far": {"driver": "filesystem", "root": str(tmp_path / "far")},
            },
        },
    }
    if request.param == "postgres":
        settings["database_url"] = request.getfixturevalue("fresh_postgres_url")
        settings["auto_migrate"] = True
    config = tmp_path / "moorage.yaml"
    config.write_text(json.dumps(settings))
    application = build(load_settings(config))
    partial = b"half of something"
    with TestClient(application.asgi) as client:
        for data in (*LAYERS, LAYERS[0]):  # the first one twice: stored once
            url = f"/v2/acme/app/blobs/uploads/?digest={_digest(data)}"
            assert client.post(url, content=data).status_code == 201
        location = client.post("/v2/acme/other/blobs/uploads/").headers["Location"]
        assert client.patch(location, content=partial).status_code == 202
    application.close()
    yield Stored(config, sum(len(data) for data in LAYERS), len(partial))


def _usage(stored: Stored, *extra: str) -> dict[str, object]:
    result = moorage("storage", "usage", "--config", str(stored.config), "-o", "json", *extra)
    assert result.returncode == 0, result.stderr
    document: dict[str, object] = json.loads(result.stdout)
    return document


def _location(
    name: str, blobs: int, size: int, uploads: int, received: int, gc: tuple[int, int] | None
) -> dict[str, object]:
    return {
        "location": name,
        "blobs": blobs,
        "bytes": size,
        "uploads": uploads,
        "upload_bytes": received,
        "gc_blobs": None if gc is None else gc[0],
        "gc_bytes": None if gc is None else gc[1],
    }


def test_usage_reports_each_location(stored: Stored) -> None:
    document = _usage(stored)
    # The blobs are unreferenced but younger than the grace window: the next GC keeps them.
    assert document["locations"] == [
        _location("near", 3, stored.bytes, 1, stored.partial, (0, 0)),
        _location("far", 0, 0, 0, 0, (0, 0)),
    ]
    assert (document["blobs"], document["bytes"]) == (3, stored.bytes)
    assert document["next_gc"] == {"tags": 0, "manifests": 0, "blobs": 0, "bytes": 0, "uploads": 0}
    replicated = moorage("worker", "replicate", "--config", str(stored.config))
    assert replicated.returncode == 0, replicated.stderr
    after = _usage(stored, "--no-gc")
    assert after["locations"] == [
        _location("near", 3, stored.bytes, 1, stored.partial, None),
        _location("far", 3, stored.bytes, 0, 0, None),
    ]
    assert (after["blobs"], after["bytes"]) == (6, 2 * stored.bytes)
    assert after["next_gc"] is None


def test_usage_predicts_what_the_next_gc_frees(stored: Stored) -> None:
    """Past the grace windows, the unreferenced blobs and the stale session are what the
    next GC frees; the report deletes nothing, and the GC then frees exactly that."""
    settings = json.loads(stored.config.read_text())
    settings["gc"] = {"blob_grace_s": 0, "upload_max_age_s": 0}
    stored.config.write_text(json.dumps(settings))
    assert moorage("worker", "replicate", "--config", str(stored.config)).returncode == 0
    for _ in range(2):  # twice: the first report deleted nothing
        document = _usage(stored)
        assert document["locations"] == [
            _location("near", 3, stored.bytes, 1, stored.partial, (3, stored.bytes)),
            _location("far", 3, stored.bytes, 0, 0, (3, stored.bytes)),
        ]
        assert document["next_gc"] == {
            "tags": 0,
            "manifests": 0,
            "blobs": 3,
            "bytes": stored.bytes,  # each blob once; gc_bytes say what each location frees
            "uploads": 1,
        }
    collected = moorage("gc", "--config", str(stored.config), "-o", "json")
    assert collected.returncode == 0, collected.stderr
    gc_report = json.loads(collected.stdout)
    assert (gc_report["blobs"], gc_report["uploads"]) == (3, 1)
    empty = _usage(stored)
    assert empty["locations"] == [
        _location("near", 0, 0, 0, 0, (0, 0)),
        _location("far", 0, 0, 0, 0, (0, 0)),
    ]


def test_usage_as_text(stored: Stored) -> None:
    result = moorage("storage", "usage", "--config", str(stored.config))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == (
        f"near: 3 blobs, {stored.bytes} bytes; 1 uploads open, {stored.partial} bytes; "
        "next GC frees 0 blobs, 0 bytes"
    )
    assert (
        lines[1] == "far: 0 blobs, 0 bytes; 0 uploads open, 0 bytes; next GC frees 0 blobs, 0 bytes"
    )
    assert lines[2] == "next GC: 0 tags, 0 manifests, 0 blobs, 0 bytes, 0 expired uploads"


def test_usage_of_an_unreachable_database_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "moorage.yaml"
    config.write_text(
        json.dumps(
            {
                "data_dir": str(tmp_path / "data"),
                "database_url": "postgresql://nobody:secret@127.0.0.1:1/none",
            }
        )
    )
    result = moorage("storage", "usage", "--config", str(config))
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1].startswith("error: cannot reach the database")
    assert ":secret@" not in result.stderr  # the password stays out of what it prints
    assert moorage("storage", "usage", "--output", "yaml").returncode == 2


def test_healthz_storage_is_for_superusers(stored: Stored, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOORAGE_AUTH__ENABLED", "true")
    application = build(load_settings(stored.config))
    try:
        application.accounts.create_user("root", "root-password-4c1d", superuser=True)
        application.accounts.create_user("alice", "alice-password-9b2e")
        with TestClient(application.asgi) as client:
            anonymous = client.get("/healthz/storage")
            assert anonymous.status_code == 401
            assert "WWW-Authenticate" in anonymous.headers
            assert (
                client.get("/healthz/storage", auth=("alice", "alice-password-9b2e")).status_code
                == 403
            )
            response = client.get("/healthz/storage", auth=("root", "root-password-4c1d"))
            assert response.status_code == 200, response.text
            assert response.json() == {
                "blobs": 3,
                "bytes": stored.bytes,
                "locations": [
                    _location("near", 3, stored.bytes, 1, stored.partial, None),
                    _location("far", 0, 0, 0, 0, None),
                ],
                "next_gc": None,
            }
            with_gc = client.get("/healthz/storage?gc=true", auth=("root", "root-password-4c1d"))
            assert with_gc.status_code == 200
            assert with_gc.json()["next_gc"] == {
                "tags": 0,
                "manifests": 0,
                "blobs": 0,
                "bytes": 0,
                "uploads": 0,
            }
            assert with_gc.json()["locations"][0]["gc_blobs"] == 0
            plain = client.get("/healthz")  # the probe stays a liveness check, open
            assert plain.status_code == 200 and "locations" not in plain.json()
    finally:
        application.close()
