"""``kill -9`` of a real ``moorage serve`` (PostgreSQL) in the middle of manifest pushes:
after every kill a manifest is stored with all its labels, its tag and its expiry, or not
at all; the retry after a restart stores everything (issue 11).

Each push carries 200 labels: the old code wrote them one transaction each after the
manifest row, a window of a second or so in which a kill left the manifest without its
labels, and the retry kept it that way (the expiry lost)."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx

from moorage.db.engine import Database, create_database_engine
from moorage.model.sql import SqlRegistryModel
from support.cli import _wait_until_up, clean_env
from support.e2e_clients import free_port

SCHEMA2 = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_TYPE = "application/vnd.docker.container.image.v1+json"
LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
NAME = "acme/app"
ROUNDS = 5
LABELS = 200


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@contextmanager
def server(data_dir: Path, database_url: str, port: int) -> Iterator[subprocess.Popen[str]]:
    """``moorage serve`` in a process group of its own (supervisor and worker), killed
    with SIGKILL at the end if the test has not done it already."""
    env = {
        "MOORAGE_DATA_DIR": str(data_dir),
        "MOORAGE_DATABASE_URL": database_url,
        "MOORAGE_AUTO_MIGRATE": "true",
        "MOORAGE_LOG_LEVEL": "warning",
    }
    with tempfile.TemporaryFile(mode="w+") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "moorage", "serve", "--port", str(port)],
            env=clean_env(env),
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            _wait_until_up(process, f"http://127.0.0.1:{port}", output)
            yield process
        finally:
            kill(process)


def kill(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=20)


def put(http: httpx.Client, tag_name: str, body: bytes) -> httpx.Response | None:
    """The PUT, or None when the server died under it."""
    try:
        return http.put(
            f"/v2/{NAME}/manifests/{tag_name}", content=body, headers={"Content-Type": SCHEMA2}
        )
    except httpx.TransportError:
        return None


def image(http: httpx.Client, seed: int) -> bytes:
    labels = {f"label.{i}": f"value {seed}" for i in range(LABELS - 1)}
    labels["quay.expires-after"] = "2h"
    config = json.dumps({"architecture": "amd64", "config": {"Labels": labels}}).encode()
    layer = f"layer {seed}".encode()
    for blob in (config, layer):
        response = http.post(f"/v2/{NAME}/blobs/uploads/?digest={sha256(blob)}", content=blob)
        assert response.status_code == 201, response.text
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": SCHEMA2,
            "config": {"mediaType": CONFIG_TYPE, "digest": sha256(config), "size": len(config)},
            "layers": [{"mediaType": LAYER, "digest": sha256(layer), "size": len(layer)}],
        }
    ).encode()


def all_or_nothing(model: SqlRegistryModel, tag_name: str, body: bytes) -> bool:
    """True when everything is stored, False when nothing is; fails on anything between."""
    repo = model.lookup_repository("acme", "app")
    assert repo is not None
    manifest = model.lookup_manifest_by_digest(repo, sha256(body), allow_dead=True)
    tag = model.get_repo_tag(repo, tag_name)
    if manifest is None:
        assert tag is None
        return False
    labels = model.list_manifest_labels(manifest)
    assert len(labels) == LABELS, f"{len(labels)} of {LABELS} labels stored"
    assert tag is not None and tag.manifest_id == manifest.id
    assert tag.lifetime_end_ts == tag.lifetime_start_ts + 7200
    return True


def test_kill_9_during_pushes_leaves_all_or_nothing(
    tmp_path: Path, fresh_postgres_url: str
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    engine = create_database_engine(fresh_postgres_url)
    model = SqlRegistryModel(Database(engine))
    rng = random.Random(11)
    outcomes: list[bool] = []
    pending: tuple[str, bytes] | None = None  # the push the last kill interrupted
    try:
        for round_number in range(ROUNDS + 1):
            with (
                server(tmp_path, fresh_postgres_url, port) as process,
                httpx.Client(base_url=base, timeout=30) as http,
            ):
                if pending is not None:  # its retry, after the restart
                    retried = put(http, *pending)
                    assert retried is not None and retried.status_code == 201, retried
                    assert all_or_nothing(model, *pending)
                if round_number == ROUNDS:
                    break
                tag_name, body = f"round{round_number}", image(http, round_number)
                pusher = threading.Thread(target=put, args=(http, tag_name, body))
                pusher.start()
                time.sleep(rng.uniform(0.0, 0.15))
                kill(process)
                pusher.join(timeout=30)
            outcomes.append(all_or_nothing(model, tag_name, body))
            pending = (tag_name, body)
    finally:
        engine.dispose()
    whole, none = outcomes.count(True), outcomes.count(False)
    print(f"after the kill: {whole} stored whole, {none} not at all")
