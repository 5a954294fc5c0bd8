"""Squashed images end to end (issue 15): a real ``moorage serve`` (two workers, auth on,
a GPG signing key) squashes a multi-layer image with deletions, an opaque directory, hard
and symbolic links and a file replaced between layers; ``skopeo copy docker-archive:``
and ``podman load`` read the tarball, and its one layer (as skopeo stores it, and as
podman extracts it) is the tree a reference model computes from the layers. ``gpg
--verify`` accepts the signature with the downloaded key and refuses a tampered tarball.
Concurrent requests build once; private repositories stay private; off means 404.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import random
import shutil
import stat
import subprocess
import tarfile
import tempfile
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.e2e_accounts import RegistryAccounts
from support.e2e_clients import (
    ClientConfig,
    PeakMemorySampler,
    Podman,
    RegistryServer,
    Skopeo,
    process_tree,
    run,
    start_registry,
    status_kib,
)
from support.squash_layers import Op, comparable, layer_tar, read_flat, reference_flatten

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
GZIP_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
MiB = 1024 * 1024

BASE = [
    Op("dir", "etc", mode=0o755),
    Op("file", "etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n", 0o644),
    Op("file", "etc/shadow", b"root:*:19000::::::\n", 0o640, gid=42),
    Op("dir", "var", mode=0o755),
    Op("dir", "var/cache", mode=0o755),
    Op("file", "var/cache/stale-1", b"stale"),
    Op("file", "var/cache/stale-2", b"stale too"),
    Op("dir", "bin", mode=0o755),
    Op("file", "bin/tool", b"#!/bin/sh\necho tool\n", 0o4755, uid=1000, gid=1000),
    Op("hardlink", "bin/tool-alias", target="bin/tool"),
    Op("dir", "data", mode=0o750, uid=1000, gid=1000),
    Op("file", "data/config", b"version=1\n", 0o600, uid=1000, gid=1000),
    Op("hardlink", "data/config-v1", target="data/config"),
    Op("file", "doomed", b"will be deleted"),
    Op("hardlink", "doomed-link", target="doomed"),
    Op("dir", "usr", mode=0o755),
    Op("dir", "usr/lib", mode=0o755),
    Op("file", "usr/lib/libfoo.so.1", b"\x7fELF not really", 0o755),
    Op("symlink", "usr/lib/libfoo.so", target="libfoo.so.1"),
    Op("symlink", "lib", target="usr/lib"),
]
MIDDLE = [
    Op("file", "etc/passwd", b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/:/bin/sh\n"),
    Op("dir", "var/cache", mode=0o755),
    Op("opaque", "var/cache"),
    Op("file", "var/cache/fresh", b"fresh"),
    Op("whiteout", "doomed"),
    Op("file", "data/config", b"version=2\n", 0o600, uid=1000, gid=1000),
    Op("dir", "opt", mode=0o755),
    Op("file", "opt/app", b"app binary", 0o755),
]
TOP = [
    Op("whiteout", "etc/shadow"),
    Op("symlink", "etc/localtime", target="/usr/share/zoneinfo/UTC"),
    Op("file", "opt/app", b"app binary, patched", 0o755),
]
LAYERS = [BASE, MIDDLE, TOP]
IMAGE_CONFIG = {
    "architecture": "amd64",
    "os": "linux",
    "created": "2025-01-02T03:04:05Z",
    "config": {
        "Env": ["PATH=/usr/bin:/bin", "APP_MODE=squashed"],
        "Entrypoint": ["/opt/app"],
        "Cmd": ["--serve"],
        "Labels": {"org.example.role": "test"},
        "WorkingDir": "/opt",
    },
}


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _push_blob(http: httpx.Client, repo: str, data: bytes) -> str:
    digest = _sha256(data)
    answer = http.post(f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=data)
    assert answer.status_code == 201, answer.text
    return digest


def push_image(
    http: httpx.Client,
    repo: str,
    reference: str,
    layers: list[list[Op]],
    config: dict[str, Any] | None = None,
    raw_layers: list[bytes] | None = None,
) -> str:
    """Pushes an OCI image of gzipped ``layers`` (or ``raw_layers``: tars); its digest."""
    tars = raw_layers if raw_layers is not None else [layer_tar(ops) for ops in layers]
    document = dict(config or IMAGE_CONFIG)
    document["rootfs"] = {"type": "layers", "diff_ids": [_sha256(tar) for tar in tars]}
    document["history"] = [{"created_by": f"layer {i}"} for i in range(len(tars))]
    descriptors = []
    for tar in tars:
        compressed = gzip.compress(tar, compresslevel=1)
        digest = _push_blob(http, repo, compressed)
        descriptors.append({"mediaType": GZIP_LAYER, "digest": digest, "size": len(compressed)})
    config_bytes = json.dumps(document).encode()
    config_digest = _push_blob(http, repo, config_bytes)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config_bytes)},
        "layers": descriptors,
    }
    body = json.dumps(manifest).encode()
    answer = http.put(
        f"/v2/{repo}/manifests/{reference}",
        content=body,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert answer.status_code == 201, answer.text
    return _sha256(body)


def _gpg(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run(["gpg", "--homedir", str(home), "--batch", *args], timeout=120, check=check)


@pytest.fixture(scope="module")
def signing_home() -> Iterator[tuple[Path, str]]:
    """A GnuPG home with a fresh signing key, made with gpg itself (short path: the agent's
    socket must fit in 108 bytes)."""
    if shutil.which("gpg") is None:
        pytest.skip("gpg is missing (Debian package gnupg)")
    home = Path(tempfile.mkdtemp(prefix="e2e-gpg-", dir="/tmp"))
    home.chmod(0o700)
    try:
        _gpg(home, "--passphrase", "", "--quick-gen-key", "Moorage E2E <e2e@example.invalid>",
             "rsa2048", "sign", "never")  # fmt: skip
        listed = _gpg(home, "--list-secret-keys", "--with-colons").stdout
        fingerprint = next(
            line.split(":")[9] for line in listed.splitlines() if line.startswith("fpr:")
        )
        yield home, fingerprint
    finally:
        run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], timeout=30, check=False)
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def squash_registry(
    tmp_path_factory: pytest.TempPathFactory, signing_home: tuple[Path, str]
) -> Iterator[RegistryServer]:
    home, fingerprint = signing_home
    base = tmp_path_factory.mktemp("squash-registry")
    config = base / "config.yml"
    config.write_text(
        json.dumps(
            {
                "derived_images": {
                    "enabled": True,
                    "signing_key_id": fingerprint,
                    "gnupg_home": str(home),
                    "build_wait_s": 120,
                }
            }
        )
    )
    extra = ["--config", str(config), "--workers", "2"]
    with start_registry(base, "moorage", extra_args=extra, auth=True) as server:
        yield server


@pytest.fixture
def admin(squash_registry: RegistryServer) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=squash_registry.base_url,
        timeout=300,
        trust_env=False,
        auth=squash_registry.credentials,
    ) as client:
        yield client


def _tarball(http: httpx.Client, path: str, **params: str) -> bytes:
    answer = http.get(path, params=params)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/x-tar"
    return answer.content


def _only_layer_of_oci(layout: Path) -> bytes:
    index = json.loads((layout / "index.json").read_text())
    (descriptor,) = index["manifests"]
    manifest = json.loads(_oci_blob(layout, descriptor["digest"]))
    (layer,) = manifest["layers"]
    data = _oci_blob(layout, layer["digest"])
    assert _sha256(data) == layer["digest"]
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def _oci_blob(layout: Path, digest: str) -> bytes:
    return (layout / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes()


def _tree_on_disk(root: Path) -> dict[str, tuple[object, ...]]:
    """What podman extracted, as ``comparable`` shapes it (hard links: same inode)."""
    groups: dict[tuple[int, int], set[str]] = {}
    seen: dict[str, os.stat_result] = {}
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            full = Path(directory) / name
            relative = str(full.relative_to(root))
            info = full.lstat()
            seen[relative] = info
            if not stat.S_ISDIR(info.st_mode):
                groups.setdefault((info.st_dev, info.st_ino), set()).add(relative)
    out: dict[str, tuple[object, ...]] = {}
    for relative, info in seen.items():
        full = root / relative
        is_dir, is_link = stat.S_ISDIR(info.st_mode), stat.S_ISLNK(info.st_mode)
        kind = "dir" if is_dir else "symlink" if is_link else "file"
        names = frozenset() if is_dir else frozenset(groups[(info.st_dev, info.st_ino)])
        out[relative] = (
            kind,
            stat.S_IMODE(info.st_mode) if not is_link else None,
            info.st_uid,
            info.st_gid,
            int(info.st_mtime) if not is_dir else None,
            full.read_bytes() if kind == "file" else b"",
            os.readlink(full) if is_link else "",
            names,
        )
    return out


def _expected_on_disk() -> dict[str, tuple[object, ...]]:
    """The reference tree as extraction shows it: parents implied by their content appear
    as directories; symlink modes and directory times are the extractor's."""
    expected = comparable(reference_flatten(LAYERS))
    shaped: dict[str, tuple[object, ...]] = {
        path: (kind, None if kind == "symlink" else mode, uid, gid,
               None if kind == "dir" else mtime, data, target, names)
        for path, (kind, mode, uid, gid, mtime, data, target, names) in expected.items()
    }  # fmt: skip
    return shaped


def test_a_squashed_image_loads_in_skopeo_and_podman_as_the_flattened_tree(
    admin: httpx.Client, squash_registry: RegistryServer, tmp_path: Path
) -> None:
    repo = "e2e/squash/layered"
    push_image(admin, repo, "v1", LAYERS)
    tarball = _tarball(admin, f"/c1/squash/{repo}/v1")
    archive = tmp_path / "image.tar"
    archive.write_bytes(tarball)
    expected = comparable(reference_flatten(LAYERS))

    with tarfile.open(archive) as tar:
        (entry,) = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        config = json.loads(tar.extractfile(entry["Config"]).read())  # type: ignore[union-attr]
        layer = tar.extractfile(entry["Layers"][0]).read()  # type: ignore[union-attr]
    assert entry["RepoTags"] == [f"{repo}:v1"]
    assert comparable(read_flat(layer)) == expected
    assert config["config"] == IMAGE_CONFIG["config"]
    assert config["rootfs"]["diff_ids"] == [_sha256(layer)]
    assert len(config["history"]) == 1

    # skopeo reads the docker-archive (checking the layer against the diff id).
    client = ClientConfig.write(tmp_path / "client", squash_registry.host)
    layout = tmp_path / "oci"
    Skopeo(client)("copy", f"docker-archive:{archive}", f"oci:{layout}:v1", timeout=300)
    assert comparable(read_flat(_only_layer_of_oci(layout))) == expected

    # podman loads it (root, throw-away vfs storage) and extracts it: the tree on disk.
    podman = Podman.create(client, tmp_path / "podman")
    try:
        loaded = podman("load", "-i", str(archive), timeout=300)
        assert f"{repo}:v1" in loaded.stdout + loaded.stderr
        inspected = podman.inspect_image(f"localhost/{repo}:v1")
        assert len(inspected["RootFS"]["Layers"]) == 1
        assert "APP_MODE=squashed" in inspected["Config"]["Env"]
        assert inspected["Config"]["Entrypoint"] == ["/opt/app"]
        assert inspected["Labels"] == {"org.example.role": "test"}
        mounted = Path(podman("image", "mount", f"localhost/{repo}:v1", timeout=120).stdout.strip())
        try:
            assert _tree_on_disk(mounted) == _expected_on_disk()
        finally:
            podman("image", "unmount", f"localhost/{repo}:v1", timeout=120, check=False)
    finally:
        podman.cleanup()


def test_the_signature_verifies_with_the_published_key_and_a_tampered_tarball_fails(
    admin: httpx.Client, tmp_path: Path
) -> None:
    repo = "e2e/squash/signed"
    push_image(admin, repo, "v1", LAYERS)
    tarball = _tarball(admin, f"/c1/squash/{repo}/v1")
    signature = admin.get(f"/c1/squash-signature/{repo}/v1")
    assert signature.status_code == 200, signature.text
    assert signature.headers["content-type"].startswith("application/pgp-signature")
    assert signature.text.startswith("-----BEGIN PGP SIGNATURE-----")
    with httpx.Client(base_url=str(admin.base_url), trust_env=False) as anonymous:
        key = anonymous.get("/c1/keys/squash.asc")  # public: no credentials needed
    assert key.status_code == 200 and "BEGIN PGP PUBLIC KEY BLOCK" in key.text

    home = Path(tempfile.mkdtemp(prefix="e2e-gpgv-", dir="/tmp"))
    home.chmod(0o700)
    try:
        (tmp_path / "key.asc").write_text(key.text)
        _gpg(home, "--import", str(tmp_path / "key.asc"))
        (tmp_path / "image.tar").write_bytes(tarball)
        (tmp_path / "image.tar.asc").write_text(signature.text)
        verified = _gpg(
            home, "--verify", str(tmp_path / "image.tar.asc"), str(tmp_path / "image.tar")
        )
        assert "Good signature" in verified.stderr
        tampered = bytearray(tarball)
        tampered[len(tampered) // 2] ^= 0x01
        (tmp_path / "image.tar").write_bytes(bytes(tampered))
        refused = _gpg(
            home, "--verify", str(tmp_path / "image.tar.asc"), str(tmp_path / "image.tar"),
            check=False,
        )  # fmt: skip
        assert refused.returncode != 0 and "BAD signature" in refused.stderr
    finally:
        run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], timeout=30, check=False)
        shutil.rmtree(home, ignore_errors=True)
    # Served from storage the second time: the same bytes, the same signature.
    assert _tarball(admin, f"/c1/squash/{repo}/v1") == tarball
    assert admin.get(f"/c1/squash-signature/{repo}/v1").text == signature.text


def _builds_logged(server: RegistryServer) -> list[dict[str, Any]]:
    built = []
    for line in server.log_path.read_text(errors="replace").splitlines():
        if "squashed image built" in line:
            try:
                built.append(json.loads(line))
            except ValueError:
                built.append({"line": line})
    return built


def test_concurrent_requests_on_two_workers_build_the_image_once(
    admin: httpx.Client, squash_registry: RegistryServer
) -> None:
    repo = "e2e/squash/concurrent"
    # Big enough that the build takes a while: the racers meet it under way.
    filler = [Op("file", f"blob/{i}", os.urandom(2 * MiB)) for i in range(12)]
    push_image(admin, repo, "v1", [filler, *LAYERS])
    before = len(_builds_logged(squash_registry))
    derived_before = len(list((squash_registry.data_dir / "storage" / "derived").rglob("data")))
    results: list[tuple[int, bytes]] = []
    lock = threading.Lock()

    def fetch() -> None:
        with httpx.Client(
            base_url=squash_registry.base_url,
            timeout=300,
            trust_env=False,
            auth=squash_registry.credentials,
        ) as client:
            answer = client.get(f"/c1/squash/{repo}/v1")
        with lock:
            results.append((answer.status_code, answer.content))

    threads = [threading.Thread(target=fetch) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert [status for status, _ in results] == [200] * 8
    assert len({body for _, body in results}) == 1
    built = _builds_logged(squash_registry)[before:]
    assert len(built) == 1, built
    # Every racer was in flight while that one build ran (so the others waited for it).
    finished = datetime.fromisoformat(built[0]["timestamp"])
    requests = [
        entry
        for entry in map(json.loads, _json_lines(squash_registry))
        if entry.get("path") == f"/c1/squash/{repo}/v1"
    ]
    assert len(requests) == 8
    for entry in requests:
        started = datetime.fromisoformat(entry["timestamp"]) - timedelta(
            milliseconds=entry["duration_ms"]
        )
        assert started < finished, (entry, built)
    assert len(list((squash_registry.data_dir / "storage" / "derived").rglob("data"))) == (
        derived_before + 1
    )


def _json_lines(server: RegistryServer) -> list[str]:
    return [
        line
        for line in server.log_path.read_text(errors="replace").splitlines()
        if line.startswith("{")
    ]


def test_private_images_are_refused_without_credentials_or_to_another_user(
    admin: httpx.Client, squash_registry: RegistryServer
) -> None:
    repo = "e2e/squash/private"
    push_image(admin, repo, "v1", [BASE])
    RegistryAccounts(squash_registry).create_user("squash-bob", "bob-password-1")
    base_url = squash_registry.base_url
    for auth in (None, ("squash-bob", "bob-password-1"), ("squash-bob", "wrong")):
        with httpx.Client(base_url=base_url, trust_env=False, auth=auth, timeout=60) as other:
            for path in (f"/c1/squash/{repo}/v1", f"/c1/squash-signature/{repo}/v1"):
                answer = other.get(path)
                assert answer.status_code == 401, (auth, path, answer.text)
                assert answer.json()["errors"][0]["code"] == "UNAUTHORIZED"
                assert "www-authenticate" in answer.headers
                assert b"ustar" not in answer.content
    # The owner's pull permission is what counts: a granted read lets bob in.
    RegistryAccounts(squash_registry)("repo", "visibility", repo, "public")
    with httpx.Client(base_url=base_url, trust_env=False, timeout=120) as anonymous:
        assert anonymous.get(f"/c1/squash/{repo}/v1").status_code == 200


def test_unknown_tags_digests_platforms_and_repositories_are_404(admin: httpx.Client) -> None:
    repo = "e2e/squash/missing"
    digest = push_image(admin, repo, "v1", [BASE])
    cases = {
        f"/c1/squash/{repo}/nope": "MANIFEST_UNKNOWN",
        f"/c1/squash/{repo}/sha256:{'0' * 64}": "MANIFEST_UNKNOWN",
        f"/c1/squash/{repo}/sha256:zz": "MANIFEST_UNKNOWN",
        f"/c1/squash/{repo}/v1?platform=linux/arm64": "MANIFEST_UNKNOWN",
        f"/c1/squash/{repo}/v1?platform=bad": "MANIFEST_UNKNOWN",
        "/c1/squash/e2e/squash/ghost/v1": "NAME_UNKNOWN",
    }
    for path, code in cases.items():
        answer = admin.get(path)
        assert answer.status_code == 404, (path, answer.text)
        assert answer.json()["errors"][0]["code"] == code, path
    by_digest = _tarball(admin, f"/c1/squash/{repo}/{digest}")
    with tarfile.open(fileobj=io.BytesIO(by_digest)) as tar:
        (entry,) = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        assert "repositories" not in tar.getnames()
    assert entry["RepoTags"] == []
    ranged = admin.get(f"/c1/squash/{repo}/{digest}", headers={"Range": "bytes=0-511"})
    assert ranged.status_code == 206 and ranged.content == by_digest[:512]
    head = admin.head(f"/c1/squash/{repo}/{digest}")
    assert head.status_code == 200 and int(head.headers["content-length"]) == len(by_digest)


def test_a_multi_arch_tag_squashes_the_platform_asked_for(admin: httpx.Client) -> None:
    repo = "e2e/squash/multiarch"
    children = []
    for arch, marker in (("amd64", b"x86"), ("arm64", b"arm")):
        config = {**IMAGE_CONFIG, "architecture": arch}
        layer = [Op("file", "arch", marker)]
        digest = push_image(admin, repo, f"sha256-{arch}", [layer], config)
        body = admin.get(f"/v2/{repo}/manifests/{digest}", headers={"Accept": OCI_MANIFEST})
        children.append(
            {
                "mediaType": OCI_MANIFEST,
                "digest": digest,
                "size": len(body.content),
                "platform": {"os": "linux", "architecture": arch},
            }
        )
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children})
    put = admin.put(
        f"/v2/{repo}/manifests/multi", content=index, headers={"Content-Type": OCI_INDEX}
    )
    assert put.status_code == 201, put.text

    def arch_file(**params: str) -> bytes:
        tarball = _tarball(admin, f"/c1/squash/{repo}/multi", **params)
        with tarfile.open(fileobj=io.BytesIO(tarball)) as tar:
            (entry,) = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
            layer = tar.extractfile(entry["Layers"][0]).read()  # type: ignore[union-attr]
        return read_flat(layer)["arch"].data

    assert arch_file() == b"x86"
    assert arch_file(platform="linux/arm64") == b"arm"
    missing = admin.get(f"/c1/squash/{repo}/multi", params={"platform": "linux/s390x"})
    assert missing.status_code == 404 and "s390x" in missing.json()["errors"][0]["message"]


def test_squashing_off_answers_404(tmp_path: Path) -> None:
    with (
        start_registry(tmp_path / "off", "moorage") as server,
        httpx.Client(base_url=server.base_url, trust_env=False, timeout=60) as http,
    ):
        push_image(http, "e2e/squash/off", "v1", [BASE])
        for path in (
            "/c1/squash/e2e/squash/off/v1",
            "/c1/squash-signature/e2e/squash/off/v1",
            "/c1/keys/squash.asc",
        ):
            answer = http.get(path)
            assert answer.status_code == 404, (path, answer.text)
            assert answer.json()["errors"][0]["code"] == "NOT_FOUND"
        assert not (server.data_dir / "storage" / "derived").exists()


class _RandomFile(io.RawIOBase):
    """``size`` pseudo-random bytes (incompressible), made as they are read."""

    def __init__(self, size: int, seed: int) -> None:
        self.left, self.random = size, random.Random(seed)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        size = min(len(buffer), self.left, MiB)
        buffer[:size] = self.random.randbytes(size)
        self.left -= size
        return size


@pytest.mark.slow
def test_squashing_a_120_mib_image_keeps_the_server_memory_flat(
    tmp_path: Path, signing_home: tuple[Path, str]
) -> None:
    if not os.path.exists("/proc/self/clear_refs"):
        pytest.skip("needs /proc")
    size = 120 * MiB
    tar_path = tmp_path / "big.tar"
    with tarfile.open(tar_path, "w") as tar:
        info = tarfile.TarInfo("big/file")
        info.size = size
        tar.addfile(info, io.BufferedReader(_RandomFile(size, 7)))
        small = tarfile.TarInfo("small")
        small.size = 5
        tar.addfile(small, io.BytesIO(b"small"))
    gz_path = tmp_path / "big.tar.gz"
    with tar_path.open("rb") as raw, gzip.open(gz_path, "wb", compresslevel=1) as packed:
        shutil.copyfileobj(raw, packed, MiB)
    diff_id = "sha256:" + _file_sha256(tar_path)
    layer_digest = "sha256:" + _file_sha256(gz_path)
    tar_path.unlink()

    home, fingerprint = signing_home
    config_file = tmp_path / "config.yml"
    config_file.write_text(
        json.dumps(
            {
                "derived_images": {
                    "enabled": True,
                    "signing_key_id": fingerprint,
                    "gnupg_home": str(home),
                    "scratch_dir": str(tmp_path),
                }
            }
        )
    )
    extra = ["--config", str(config_file)]
    with (
        start_registry(tmp_path / "mem", "moorage", extra_args=extra) as server,
        httpx.Client(base_url=server.base_url, trust_env=False, timeout=600) as http,
    ):
        repo = "e2e/squash/big"
        with gz_path.open("rb") as body:
            pushed = http.post(
                f"/v2/{repo}/blobs/uploads/", params={"digest": layer_digest}, content=body
            )
        assert pushed.status_code == 201, pushed.text
        document = {
            **IMAGE_CONFIG,
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "history": [{"created_by": "big"}],
        }
        config_bytes = json.dumps(document).encode()
        config_digest = _push_blob(http, repo, config_bytes)
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config_bytes)},
            "layers": [
                {"mediaType": GZIP_LAYER, "digest": layer_digest, "size": gz_path.stat().st_size}
            ],
        }
        put = http.put(
            f"/v2/{repo}/manifests/v1",
            content=json.dumps(manifest).encode(),
            headers={"Content-Type": OCI_MANIFEST},
        )
        assert put.status_code == 201, put.text

        pids = process_tree(server.pid)
        for pid in pids:  # start the peak-RSS marks from here
            Path(f"/proc/{pid}/clear_refs").write_text("5")
        resident_before = sum(status_kib(pid, "VmRSS") for pid in pids)
        received = 0
        with (
            PeakMemorySampler(server.pid) as memory,
            http.stream("GET", f"/c1/squash/{repo}/v1") as answer,
        ):
            assert answer.status_code == 200
            for chunk in answer.iter_bytes():
                received += len(chunk)
        assert received > size
        grown_mib = (memory.total_kib - resident_before) / 1024
        assert grown_mib < 60, f"the server's peak RSS grew {grown_mib:.0f} MiB for a 120 MiB image"
        signature = http.get(f"/c1/squash-signature/{repo}/v1")
        assert signature.status_code == 200 and "BEGIN PGP SIGNATURE" in signature.text


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(MiB):
            digest.update(chunk)
    return digest.hexdigest()
