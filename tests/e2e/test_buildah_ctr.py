"""buildah (login, ``from scratch`` + ``copy`` + ``commit``, push, pull) and containerd's ``ctr``
(``--user`` on pull and push, on a throw-away containerd) against the registry with auth on."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import httpx

from support.e2e_accounts import RequestLog
from support.e2e_buildah import Buildah
from support.e2e_clients import RegistryServer, Skopeo
from support.e2e_daemons import Ctr, layer_files
from support.e2e_images import MEDIA_INDEX, MEDIA_MANIFEST, FileSpec, OciLayout, layer

ACCEPT = {"Accept": f"{MEDIA_MANIFEST}, {MEDIA_INDEX}"}


def _manifest_digest(http: httpx.Client, repo: str, ref: str) -> str:
    answer = http.get(f"/v2/{repo}/manifests/{ref}", headers=ACCEPT)
    assert answer.status_code == 200, answer.text
    return "sha256:" + hashlib.sha256(answer.content).hexdigest()


def test_buildah_login_commit_push_pull(
    buildah: Buildah,
    registry: RegistryServer,
    login_credentials: tuple[str, str],
    repo: str,
    http: httpx.Client,
) -> None:
    log = RequestLog(registry.log_path).start()
    assert "Login Succeeded" in buildah.login(registry.host, *login_credentials).stdout
    ref = f"{registry.host}/{repo}:v1"
    files = {"etc/motd": b"committed by buildah\n", "opt/data.bin": bytes(range(256)) * 64}
    image_id = buildah.image_from_files(files, ref, {"org.example.e2e": "buildah"})
    buildah.push(ref)

    answer = http.get(f"/v2/{repo}/manifests/v1", headers=ACCEPT)
    assert answer.status_code == 200
    manifest = answer.json()
    assert manifest["mediaType"] == MEDIA_MANIFEST
    assert manifest["config"]["digest"] == f"sha256:{image_id}"
    config = http.get(f"/v2/{repo}/blobs/{manifest['config']['digest']}").json()
    assert config["config"]["Labels"]["org.example.e2e"] == "buildah"
    layers = [
        http.get(f"/v2/{repo}/blobs/{entry['digest']}").content for entry in manifest["layers"]
    ]
    assert {name: data for blob in layers for name, data in layer_files(blob).items()} == files

    buildah("rmi", "--all", timeout=60)
    assert buildah("inspect", "--type", "image", ref, check=False).returncode != 0
    buildah.pull(ref)
    pulled = buildah.inspect_image(ref)
    assert pulled["FromImageID"] == image_id
    assert pulled["OCIv1"]["config"]["Labels"]["org.example.e2e"] == "buildah"
    if not registry.is_reference:
        assert ("GET", 200) in log.token_requests()


def test_ctr_pulls_and_pushes_with_user(
    ctr: Ctr,
    skopeo: Skopeo,
    registry: RegistryServer,
    login_credentials: tuple[str, str],
    repo: str,
    layout_dir: Callable[[str], Path],
    http: httpx.Client,
) -> None:
    source = OciLayout(layout_dir("src"))
    image = source.add_image(
        [layer(FileSpec.literal("etc/hello", b"for ctr\n")), layer(FileSpec("bin/x", 5000, 3))],
        labels={"org.example.e2e": "ctr"},
        tag="v1",
    )
    skopeo.copy(f"oci:{source.root}:v1", skopeo.ref(repo, "v1"), "--preserve-digests")
    user = ":".join(login_credentials)
    ref = f"{registry.host}/{repo}:v1"
    log = RequestLog(registry.log_path).start()

    ctr("images", "pull", "--plain-http", "--snapshotter", "native", "--user", user, ref)
    assert ctr.image_digest(ref) == image.digest

    copied_repo = f"{repo}-by-ctr"
    copied = f"{registry.host}/{copied_repo}:copied"
    ctr("images", "tag", ref, copied, timeout=60)
    ctr("images", "push", "--plain-http", "--user", user, copied)
    assert _manifest_digest(http, copied_repo, "copied") == image.digest
    for digest in image.layer_digests:
        assert http.head(f"/v2/{copied_repo}/blobs/{digest}").status_code == 200
    if not registry.is_reference:
        # containerd asks with the OAuth2 password grant (POST), since it has a password.
        tokens = log.token_requests()
        assert ("POST", 200) in tokens
        assert all(status == 200 for _, status in tokens)
    ctr("images", "rm", ref, copied, timeout=60)
