"""The docker CLI (Debian docker.io) against the registry with auth on, through a throw-away
dockerd (``support.e2e_daemons``): ``docker login``, a ``FROM scratch`` build, push, pull after
``rmi``, and ``docker manifest`` inspect / create / annotate / push.

``docker login`` takes the token flow: the registry answers ``/v2/`` with a Bearer challenge,
the CLI asks the token endpoint for an offline token and keeps only the refresh token it gets
(never the password); pushes and pulls then trade it for access tokens (OAuth2 POST).
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import httpx

from support.e2e_accounts import RequestLog
from support.e2e_clients import RegistryServer
from support.e2e_daemons import Docker, layer_files, pushed_digest

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
ACCEPT = {"Accept": f"{DOCKER_MANIFEST}, {DOCKER_LIST}"}


def build_context(root: Path, content: bytes, label: str) -> Path:
    """``FROM scratch`` + ``COPY`` + ``LABEL``: nothing to pull, no container to run."""
    root.mkdir(parents=True)
    (root / "hello.txt").write_bytes(content)
    (root / "Dockerfile").write_text(
        f"FROM scratch\nCOPY hello.txt /srv/hello.txt\nLABEL org.example.e2e={label}\n"
    )
    return root


def test_login_build_push_then_pull_after_rmi(
    docker: Docker,
    registry: RegistryServer,
    login_credentials: tuple[str, str],
    repo: str,
    tmp_path: Path,
    http: httpx.Client,
) -> None:
    host = registry.host
    log = RequestLog(registry.log_path).start()
    login = docker.login(host, *login_credentials)
    assert "Login Succeeded" in login.stdout
    if not registry.is_reference:
        # The refresh token from the token endpoint is kept, not the password.
        saved = docker.saved_auth(host)
        assert saved.get("identitytoken")
        assert base64.b64decode(saved["auth"]).decode() == f"{login_credentials[0]}:"
        assert login_credentials[1] not in (docker.config_dir / "config.json").read_text()

    content = b"built by docker, pushed with a token\n"
    ref = f"{host}/{repo}:v1"
    image_id = docker.build(build_context(tmp_path / "ctx", content, "docker"), ref)
    digest = pushed_digest(docker.push(ref).stdout)

    answer = http.get(f"/v2/{repo}/manifests/v1", headers=ACCEPT)
    assert answer.status_code == 200
    assert "sha256:" + hashlib.sha256(answer.content).hexdigest() == digest
    manifest = answer.json()
    assert manifest["mediaType"] == DOCKER_MANIFEST
    assert manifest["config"]["digest"] == image_id
    (only_layer,) = manifest["layers"]
    blob = http.get(f"/v2/{repo}/blobs/{only_layer['digest']}")
    assert layer_files(blob.content) == {"srv/hello.txt": content}

    # Another repository: dockerd mounts the layer it just pushed (a token for both scopes).
    mounted = f"{repo}-mounted"
    docker("tag", ref, f"{host}/{mounted}:v1", timeout=60)
    assert pushed_digest(docker.push(f"{host}/{mounted}:v1").stdout) == digest
    if not registry.is_reference:
        mounts = [
            r
            for r in log.requests()
            if r["method"] == "POST" and r["path"] == f"/v2/{mounted}/blobs/uploads/"
        ]
        # The layer: 201, mounted (the config blob is uploaded anew: 202).
        assert 201 in [r["status"] for r in mounts]

    docker.rmi(ref, f"{host}/{mounted}:v1")
    assert docker("image", "inspect", ref, check=False).returncode != 0
    pulled = docker.pull(ref)
    assert f"Digest: {digest}" in pulled.stdout
    assert docker.image_id(ref) == image_id  # same config, layers verified by dockerd
    labels = docker("image", "inspect", "--format", "{{json .Config.Labels}}", ref).stdout
    assert json.loads(labels) == {"org.example.e2e": "docker"}

    inspected = json.loads(docker("manifest", "inspect", "--insecure", ref).stdout)
    assert inspected == manifest

    if not registry.is_reference:
        # GET /v2/auth for the login, POST (refresh-token grant) for the push and the pull.
        tokens = log.token_requests()
        assert ("GET", 200) in tokens
        assert ("POST", 200) in tokens
        assert all(status == 200 for _, status in tokens)


def test_manifest_list_create_annotate_push_inspect(
    docker: Docker,
    registry: RegistryServer,
    login_credentials: tuple[str, str],
    repo: str,
    tmp_path: Path,
    http: httpx.Client,
) -> None:
    host = registry.host
    docker.login(host, *login_credentials)
    digests = {}
    for arch in ("amd64", "arm64"):
        ref = f"{host}/{repo}:{arch}"
        docker.build(build_context(tmp_path / arch, f"{arch}\n".encode(), arch), ref)
        digests[arch] = pushed_digest(docker.push(ref).stdout)

    listed = f"{host}/{repo}:multi"
    docker("manifest", "create", "--insecure", listed, f"{host}/{repo}:amd64",
           f"{host}/{repo}:arm64")  # fmt: skip
    docker("manifest", "annotate", "--arch", "arm64", "--variant", "v8", listed,
           f"{host}/{repo}:arm64")  # fmt: skip
    pushed = docker("manifest", "push", "--insecure", "--purge", listed).stdout.strip()

    answer = http.get(f"/v2/{repo}/manifests/multi", headers=ACCEPT)
    assert answer.status_code == 200
    assert "sha256:" + hashlib.sha256(answer.content).hexdigest() == pushed.splitlines()[-1]
    index = answer.json()
    assert index["mediaType"] == DOCKER_LIST
    platforms = {
        entry["digest"]: (entry["platform"]["architecture"], entry["platform"].get("variant"))
        for entry in index["manifests"]
    }
    assert platforms == {digests["amd64"]: ("amd64", None), digests["arm64"]: ("arm64", "v8")}

    inspected = json.loads(docker("manifest", "inspect", "--insecure", listed).stdout)
    assert inspected["mediaType"] == DOCKER_LIST
    assert [entry["digest"] for entry in inspected["manifests"]] == [
        entry["digest"] for entry in index["manifests"]
    ]
