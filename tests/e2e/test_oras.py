"""oras (oras-py) against the registry: artifacts in and out, and a referrer listed by the API."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.e2e_clients import RegistryServer
from support.e2e_images import MEDIA_INDEX, MEDIA_MANIFEST, MiB, seeded_chunks, sha256_file

OrasCli = Callable[..., dict[str, Any]]
ARTIFACT_CONFIG = "application/vnd.moorage.e2e.artifact.config.v1+json"
SBOM_TYPE = "application/vnd.moorage.e2e.sbom.v1+json"
SIGNATURE_TYPE = "application/vnd.moorage.e2e.signature.v1+json"


def _seeded_file(path: Path, size: int, seed: int) -> str:
    with path.open("wb") as handle:
        for piece in seeded_chunks(seed, size):
            handle.write(piece)
    return sha256_file(path)


def _manifest(http: httpx.Client, repo: str, ref: str) -> httpx.Response:
    response = http.get(
        f"/v2/{repo}/manifests/{ref}", headers={"Accept": f"{MEDIA_MANIFEST}, {MEDIA_INDEX}"}
    )
    assert response.status_code == 200, response.text
    return response


def _descriptor_of(http: httpx.Client, repo: str, ref: str) -> dict[str, Any]:
    """Digest and size of a manifest as the registry serves it."""
    response = _manifest(http, repo, ref)
    digest = "sha256:" + hashlib.sha256(response.content).hexdigest()
    assert response.headers.get("Docker-Content-Digest", digest) == digest
    return {"digest": digest, "size": len(response.content)}


def _push_subject(
    oras_cli: OrasCli, http: httpx.Client, host: str, repo: str, tmp_path: Path
) -> dict[str, Any]:
    """An artifact to refer to; returns its descriptor."""
    (tmp_path / "subject.txt").write_text("the subject\n")
    oras_cli("push", f"{host}/{repo}:subject", f"{tmp_path / 'subject.txt'}:text/plain")
    return {"mediaType": MEDIA_MANIFEST, **_descriptor_of(http, repo, "subject")}


def test_artifact_push_and_pull(
    oras_cli: OrasCli, registry_host: str, repo: str, tmp_path: Path, http: httpx.Client
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "readme.md").write_text("# an artifact\n")
    (src / "tiny.bin").write_bytes(b"\x00\x01")
    expected = {
        "readme.md": sha256_file(src / "readme.md"),
        "tiny.bin": sha256_file(src / "tiny.bin"),
        "payload.bin": _seeded_file(src / "payload.bin", 5 * MiB + 3, 21),
    }
    config = src / "config.json"
    config.write_text('{"purpose": "e2e"}')
    pushed = oras_cli(
        "push",
        f"{registry_host}/{repo}:v1",
        f"{src / 'readme.md'}:text/markdown",
        str(src / "tiny.bin"),
        str(src / "payload.bin"),
        "--config",
        f"{config}:{ARTIFACT_CONFIG}",
        "--annotation",
        "org.example.kind=e2e-artifact",
    )
    assert pushed["status"] == 201

    manifest = _manifest(http, repo, "v1").json()
    assert manifest["config"]["mediaType"] == ARTIFACT_CONFIG
    assert manifest["config"]["digest"] == sha256_file(config)
    assert manifest["annotations"] == {"org.example.kind": "e2e-artifact"}
    titles = {d["annotations"]["org.opencontainers.image.title"]: d for d in manifest["layers"]}
    assert {name: d["digest"] for name, d in titles.items()} == expected
    assert titles["readme.md"]["mediaType"] == "text/markdown"
    if pushed["digest"]:
        assert pushed["digest"] == _descriptor_of(http, repo, "v1")["digest"]

    out = tmp_path / "out"
    out.mkdir()
    result = oras_cli("pull", f"{registry_host}/{repo}:v1", str(out))
    assert sorted(Path(f).name for f in result["files"]) == sorted(expected)
    assert {name: sha256_file(out / name) for name in expected} == expected


def test_chunked_artifact_push_and_pull(
    oras_cli: OrasCli, registry_host: str, repo: str, tmp_path: Path
) -> None:
    """oras-py's chunked mode: POST, several PATCHes with Content-Range, then PUT ?digest=."""
    payload = tmp_path / "chunky.bin"
    digest = _seeded_file(payload, 40 * MiB + 17, 33)  # three 16 MiB chunks
    pushed = oras_cli("push", f"{registry_host}/{repo}:chunked", str(payload), "--chunked",
                      timeout=300)  # fmt: skip
    assert pushed["status"] == 201
    out = tmp_path / "out"
    out.mkdir()
    oras_cli("pull", f"{registry_host}/{repo}:chunked", str(out), timeout=300)
    assert sha256_file(out / "chunky.bin") == digest


@pytest.mark.reference_xfail(reason="Distribution 2.8 has no referrers API (OCI 1.1)")
def test_referrer_with_subject_is_listed_by_the_referrers_api(
    oras_cli: OrasCli,
    registry: RegistryServer,
    repo: str,
    tmp_path: Path,
    http: httpx.Client,
) -> None:
    host = registry.host
    subject = _push_subject(oras_cli, http, host, repo, tmp_path)
    subject_arg = f"{subject['digest']},{subject['size']},{subject['mediaType']}"

    (tmp_path / "sbom.json").write_text(json.dumps({"packages": ["moorage"]}))
    (tmp_path / "sbom-config.json").write_text("{}")
    sbom = oras_cli(
        "push",
        f"{host}/{repo}:sbom",
        f"{tmp_path / 'sbom.json'}:application/json",
        "--config",
        f"{tmp_path / 'sbom-config.json'}:{SBOM_TYPE}",
        "--annotation",
        "org.example.referrer=sbom",
        "--subject",
        subject_arg,
    )
    assert sbom["status"] == 201
    (tmp_path / "sig.json").write_text('{"signature": "none"}')
    oras_cli(
        "push",
        f"{host}/{repo}:sig",
        f"{tmp_path / 'sig.json'}:application/json",
        "--config",
        f"{tmp_path / 'sbom-config.json'}:{SIGNATURE_TYPE}",
        "--subject",
        subject_arg,
    )
    sbom_descriptor = _descriptor_of(http, repo, "sbom")
    sig_descriptor = _descriptor_of(http, repo, "sig")
    # An OCI 1.1 registry that processed the subject says so on the manifest PUT.
    assert sbom["oci_subject"] == subject["digest"]

    response = http.get(f"/v2/{repo}/referrers/{subject['digest']}")
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].split(";")[0] == MEDIA_INDEX
    listing = response.json()
    assert listing["schemaVersion"] == 2
    assert listing["mediaType"] == MEDIA_INDEX
    by_digest = {d["digest"]: d for d in listing["manifests"]}
    assert set(by_digest) == {sbom_descriptor["digest"], sig_descriptor["digest"]}
    listed = by_digest[sbom_descriptor["digest"]]
    # No artifactType in the manifest: the registry reports the config media type.
    assert listed["artifactType"] == SBOM_TYPE
    assert listed["mediaType"] == MEDIA_MANIFEST
    assert listed["size"] == sbom_descriptor["size"]
    assert listed["annotations"] == {"org.example.referrer": "sbom"}
    assert by_digest[sig_descriptor["digest"]]["artifactType"] == SIGNATURE_TYPE

    filtered = http.get(
        f"/v2/{repo}/referrers/{subject['digest']}", params={"artifactType": SBOM_TYPE}
    )
    assert filtered.status_code == 200
    if "artifactType" in filtered.headers.get("OCI-Filters-Applied", ""):
        assert [d["digest"] for d in filtered.json()["manifests"]] == [sbom_descriptor["digest"]]

    # A digest nothing refers to: an empty list, not a 404.
    nothing = http.get(f"/v2/{repo}/referrers/{sbom_descriptor['digest']}")
    assert nothing.status_code == 200
    assert nothing.json()["manifests"] == []

    # The referrer itself is an ordinary artifact: it pulls by tag.
    out = tmp_path / "out"
    out.mkdir()
    oras_cli("pull", f"{host}/{repo}:sbom", str(out))
    assert json.loads((out / "sbom.json").read_text()) == {"packages": ["moorage"]}
