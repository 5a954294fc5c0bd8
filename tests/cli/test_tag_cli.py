"""``moorage tag history|restore|expire`` and ``moorage label list|add|rm`` as an operator runs
them: real subprocesses over a database a registry filled; what they change is what a pull
then sees."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from tests.http.v2.helpers import image, put_manifest, sha256

from moorage.app import build
from moorage.config import load_settings
from support.cli import moorage


@pytest.fixture
def pushed(tmp_path: Path) -> Iterator[tuple[Path, str, str, str]]:
    """A data directory where acme/app:latest went from v1 to v2; (dir, v1, v2, type)."""
    data_dir = tmp_path / "data"
    app = build(load_settings(data_dir=data_dir))
    with TestClient(app.asgi) as client:
        body1, media_type = image(client, "acme/app", [b"one"], labels={"team": "core"})
        assert put_manifest(client, "acme/app", "latest", body1, media_type).status_code == 201
        body2, _ = image(client, "acme/app", [b"two"])
        assert put_manifest(client, "acme/app", "latest", body2, media_type).status_code == 201
    app.close()
    yield data_dir, sha256(body1), sha256(body2), media_type


def run(data_dir: Path, *args: str) -> tuple[int, str, str]:
    done = moorage(*args, env={"MOORAGE_DATA_DIR": str(data_dir)})
    return done.returncode, done.stdout, done.stderr


def _pulled(data_dir: Path, media_type: str) -> str:
    app = build(load_settings(data_dir=data_dir))
    with TestClient(app.asgi) as client:
        response = client.get("/v2/acme/app/manifests/latest", headers={"Accept": media_type})
    app.close()
    return sha256(response.content) if response.status_code == 200 else str(response.status_code)


def test_history_then_restore_then_expire(pushed: tuple[Path, str, str, str]) -> None:
    data_dir, v1, v2, media_type = pushed
    code, out, err = run(data_dir, "tag", "history", "acme/app", "-o", "json")
    assert code == 0, err
    assert [t["manifest_digest"] for t in json.loads(out)["tags"]] == [v2, v1]
    code, out, err = run(data_dir, "tag", "history", "acme/app")
    assert code == 0 and v1 in out and "TAG" in out

    code, out, err = run(data_dir, "tag", "restore", "acme/app", "latest", v1)
    assert code == 0, err
    assert _pulled(data_dir, media_type) == v1

    code, out, err = run(data_dir, "tag", "restore", "acme/app", "other", v1)
    assert code == 1 and err.startswith("error:") and len(err.strip().splitlines()) == 1

    code, out, err = run(
        data_dir, "tag", "expire", "acme/app", "latest", "--in", "3d", "-o", "json"
    )
    assert code == 0, err
    expiry = json.loads(out)
    assert expiry["end_ts"] is not None and expiry["end_ts"] > expiry["start_ts"]
    code, out, err = run(data_dir, "tag", "expire", "acme/app", "latest", "--never", "-o", "json")
    assert code == 0 and json.loads(out)["end_ts"] is None
    assert run(data_dir, "tag", "expire", "acme/app", "latest")[0] == 2  # no --at/--in/--never
    assert run(data_dir, "tag", "expire", "acme/app", "latest", "--in", "soon")[0] == 2
    assert run(data_dir, "tag", "history", "acme/nothing")[0] == 1


def test_labels_listed_added_and_removed(pushed: tuple[Path, str, str, str]) -> None:
    data_dir, v1, _, _ = pushed
    code, out, err = run(data_dir, "label", "list", "acme/app", v1, "-o", "json")
    assert code == 0, err
    (from_image,) = json.loads(out)["labels"]
    assert (from_image["key"], from_image["source_type"]) == ("team", "manifest")
    assert run(data_dir, "label", "rm", "acme/app", v1, from_image["id"])[0] == 1

    code, out, err = run(data_dir, "label", "add", "acme/app", v1, "owner", "ops", "-o", "json")
    assert code == 0, err
    added = json.loads(out)
    assert added["source_type"] == "api"
    assert run(data_dir, "label", "add", "acme/app", v1, "com.docker.x", "y")[0] == 1
    code, out, err = run(data_dir, "label", "rm", "acme/app", v1, added["id"])
    assert code == 0, err
    code, out, _ = run(data_dir, "label", "list", "acme/app", v1, "--filter", "own", "-o", "json")
    assert json.loads(out)["labels"] == []
