"""Squashed images over the real app (``app.build``), on SQLite and PostgreSQL: built once
and served from storage after; a build another holder has under way answers 202 with
Retry-After once the wait is over; a deleted manifest has no squashed image; a layer that is
not a tar is a clear 400 and marks nothing complete; read-only registries serve what was
built and build nothing; an image built before a key was configured is signed on request,
with a key ``moorage signing generate-key`` made."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from moorage.app import Application, build
from moorage.config import load_settings
from moorage.db.migrate import upgrade
from moorage.model.sql.build_locks import BuildLocks
from moorage.services.squash.service import VERB
from support.cli import clean_env
from support.squash_layers import Op, comparable, layer_tar, read_flat, reference_flatten

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
LAYERS = [
    [
        Op("file", "a", b"one"),
        Op("dir", "d"),
        Op("file", "d/x", b"x"),
        Op("hardlink", "b", target="a"),
    ],
    [Op("whiteout", "a"), Op("opaque", "d"), Op("file", "d/y", b"y")],
]


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def push(client: TestClient, repo: str, tag: str, tars: list[bytes]) -> str:
    descriptors = []
    for tar in tars:
        blob = gzip.compress(tar)
        answer = client.post(
            f"/v2/{repo}/blobs/uploads/", params={"digest": _sha256(blob)}, content=blob
        )
        assert answer.status_code == 201, answer.text
        descriptors.append(
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": _sha256(blob),
                "size": len(blob),
            }
        )
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Env": ["K=V"]},
            "rootfs": {"type": "layers", "diff_ids": [_sha256(t) for t in tars]},
            "history": [{"created_by": str(i)} for i in range(len(tars))],
        }
    ).encode()
    assert (
        client.post(
            f"/v2/{repo}/blobs/uploads/", params={"digest": _sha256(config)}, content=config
        ).status_code
        == 201
    )
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": _sha256(config),
                "size": len(config),
            },
            "layers": descriptors,
        }
    ).encode()
    answer = client.put(
        f"/v2/{repo}/manifests/{tag}", content=body, headers={"Content-Type": OCI_MANIFEST}
    )
    assert answer.status_code == 201, answer.text
    return _sha256(body)


def only_layer(tarball: bytes) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(tarball)) as tar:
        (entry,) = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        return tar.extractfile(entry["Layers"][0]).read()  # type: ignore[union-attr]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest) -> dict[str, Any]:
    if request.param == "sqlite":
        return {}
    url = request.getfixturevalue("fresh_postgres_url")
    upgrade(url)
    return {"database_url": url}


def make_app(tmp_path: Path, database: dict[str, Any], **derived: Any) -> Application:
    return build(
        load_settings(
            data_dir=tmp_path / "data",
            derived_images={"enabled": True, **derived.pop("derived_images", {})},
            **database,
            **derived,
        )
    )


@pytest.fixture
def app(tmp_path: Path, database: dict[str, Any]) -> Iterator[Application]:
    application = make_app(tmp_path, database)
    yield application
    application.close()


def _derived_objects(app: Application) -> list[str]:
    return list(app.locations.default_driver.list("derived"))


def test_built_once_then_served_from_storage(app: Application) -> None:
    with TestClient(app.asgi) as client:
        push(client, "org/app", "v1", [layer_tar(ops) for ops in LAYERS])
        first = client.get("/c1/squash/org/app/v1")
        assert first.status_code == 200, first.text
        assert comparable(read_flat(only_layer(first.content))) == comparable(
            reference_flatten(LAYERS)
        )
        assert len(_derived_objects(app)) == 1
        second = client.get("/c1/squash/org/app/v1")
        assert second.content == first.content and len(_derived_objects(app)) == 1
        assert second.headers["etag"] == first.headers["etag"]


def test_a_build_under_way_elsewhere_answers_202_after_the_wait(
    tmp_path: Path, database: dict[str, Any]
) -> None:
    app = make_app(tmp_path, database, derived_images={"build_wait_s": 0.5})
    try:
        with TestClient(app.asgi) as client:
            push(client, "org/app", "v1", [layer_tar(ops) for ops in LAYERS])
            repository = app.registry.repositories.for_read("org/app")
            manifest = app.model.lookup_tagged_manifest(repository, "v1")
            assert manifest is not None
            service = app_squash(app)
            target = service.locate(repository, "v1", None)
            derived = app.model.lookup_or_create_derived_image(
                manifest, VERB, "local", target.varying_metadata
            )
            assert derived is not None
            other = BuildLocks(app.database, app.settings.data_dir / "locks" / "derived")
            with other.hold(derived.id) as held:  # as another worker would
                assert held
                pending = client.get("/c1/squash/org/app/v1")
                assert pending.status_code == 202 and pending.headers["retry-after"] == "5"
                assert pending.content == b""
            assert client.get("/c1/squash/org/app/v1").status_code == 200
    finally:
        app.close()


def app_squash(app: Application) -> Any:
    from moorage.app import build_squash

    return build_squash(app.settings, app.model, app.registry)


def test_a_deleted_manifest_has_no_squashed_image(app: Application) -> None:
    with TestClient(app.asgi) as client:
        digest = push(client, "org/app", "v1", [layer_tar(ops) for ops in LAYERS])
        assert client.get("/c1/squash/org/app/v1").status_code == 200
        assert client.delete(f"/v2/org/app/manifests/{digest}").status_code == 202
        for reference in ("v1", digest):
            answer = client.get(f"/c1/squash/org/app/{reference}")
            assert answer.status_code == 404, answer.text
            assert answer.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"


def test_a_layer_that_is_not_a_tar_is_a_clear_400_and_nothing_completes(
    app: Application,
) -> None:
    with TestClient(app.asgi) as client:
        push(client, "org/app", "bad", [b"this is not a tar archive" * 40])
        for _ in range(2):  # the second request tries again, and fails the same way
            answer = client.get("/c1/squash/org/app/bad")
            assert answer.status_code == 400, answer.text
            error = answer.json()["errors"][0]
            assert error["code"] == "MANIFEST_INVALID" and "not a readable tar" in error["message"]
        assert _derived_objects(app) == []


def test_read_only_serves_what_was_built_and_builds_nothing(
    tmp_path: Path, database: dict[str, Any]
) -> None:
    app = make_app(tmp_path, database)
    try:
        with TestClient(app.asgi) as client:
            push(client, "org/app", "v1", [layer_tar(ops) for ops in LAYERS])
            push(client, "org/app", "v2", [layer_tar(LAYERS[0])])
            built = client.get("/c1/squash/org/app/v1").content
    finally:
        app.close()
    read_only = make_app(tmp_path, database, read_only=True)
    try:
        with TestClient(read_only.asgi) as client:
            assert client.get("/c1/squash/org/app/v1").content == built
            refused = client.get("/c1/squash/org/app/v2")
            assert refused.status_code == 404 and "read-only" in refused.text
        assert len(_derived_objects(read_only)) == 1
    finally:
        read_only.close()


def test_an_image_built_before_the_key_is_signed_on_request(
    tmp_path: Path, database: dict[str, Any]
) -> None:
    if shutil.which("gpg") is None:
        pytest.skip("gpg is missing (Debian package gnupg)")
    home = Path(tempfile.mkdtemp(prefix="t-gpg-", dir="/tmp"))
    try:
        made = subprocess.run(
            [
                str(Path(sys.executable).parent / "moorage"),
                "signing",
                "generate-key",
                "--gnupg-home",
                str(home),
                "--output",
                "json",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env=clean_env(),
            check=True,
        )
        fingerprint = json.loads(made.stdout)["signing_key_id"]
        unsigned = make_app(tmp_path, database)
        try:
            with TestClient(unsigned.asgi) as client:
                push(client, "org/app", "v1", [layer_tar(ops) for ops in LAYERS])
                tarball = client.get("/c1/squash/org/app/v1").content
                missing = client.get("/c1/squash-signature/org/app/v1")
                assert missing.status_code == 404 and "does not sign" in missing.text
                assert client.get("/c1/keys/squash.asc").status_code == 404
        finally:
            unsigned.close()
        keyed = {"signing_key_id": fingerprint, "gnupg_home": str(home)}
        signed = make_app(tmp_path, database, derived_images=keyed)
        try:
            with TestClient(signed.asgi) as client:
                signature = client.get("/c1/squash-signature/org/app/v1")
                assert signature.status_code == 200, signature.text
                key = client.get("/c1/keys/squash.asc").text
                assert client.get("/c1/squash/org/app/v1").content == tarball  # not rebuilt
        finally:
            signed.close()
        verifier = Path(tempfile.mkdtemp(prefix="t-gpgv-", dir="/tmp"))
        try:
            (tmp_path / "key.asc").write_text(key)
            (tmp_path / "image.tar").write_bytes(tarball)
            (tmp_path / "image.tar.asc").write_text(signature.text)
            gpg = ["gpg", "--homedir", str(verifier), "--batch"]
            subprocess.run([*gpg, "--import", str(tmp_path / "key.asc")], check=True, timeout=60)
            checked = subprocess.run(
                [*gpg, "--verify", str(tmp_path / "image.tar.asc"), str(tmp_path / "image.tar")],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert checked.returncode == 0, checked.stderr
        finally:
            subprocess.run(["gpgconf", "--homedir", str(verifier), "--kill", "all"], timeout=30)
            shutil.rmtree(verifier, ignore_errors=True)
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], timeout=30)
        shutil.rmtree(home, ignore_errors=True)


def test_a_wrong_key_id_stops_the_start(tmp_path: Path) -> None:
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    with pytest.raises(Exception, match="no secret key"):
        make_app(
            tmp_path,
            {},
            derived_images={"signing_key_id": "0123456789ABCDEF", "gnupg_home": str(home)},
        )


def test_a_schema1_image_squashes_with_its_top_image_config(app: Application) -> None:
    from moorage.domain.manifests import Schema1Signer, V1Entry, build_schema1_manifest

    entries, parent = [], None
    with TestClient(app.asgi) as client:
        for index, ops in enumerate(LAYERS):
            blob = gzip.compress(layer_tar(ops))
            posted = client.post(
                "/v2/org/old/blobs/uploads/", params={"digest": _sha256(blob)}, content=blob
            )
            assert posted.status_code == 201, posted.text
            image_id = f"{index + 1:064x}"
            v1: dict[str, Any] = {"id": image_id, "architecture": "amd64", "os": "linux"}
            if parent is not None:
                v1["parent"] = parent
            if index == len(LAYERS) - 1:
                v1["config"] = {"Env": ["FROM=schema1"], "Cmd": ["/bin/true"]}
            entries.append(
                V1Entry(
                    image_id,
                    parent,
                    _sha256(blob),
                    json.dumps(v1),
                    None,
                    None,
                    None,
                    None,
                    False,
                    len(blob),
                )
            )
            parent = image_id
        body = build_schema1_manifest("org/old", "v1", "amd64", entries, Schema1Signer.generate())
        put = client.put(
            "/v2/org/old/manifests/v1",
            content=body,
            headers={"Content-Type": "application/vnd.docker.distribution.manifest.v1+prettyjws"},
        )
        assert put.status_code == 201, put.text
        answer = client.get("/c1/squash/org/old/v1")
        assert answer.status_code == 200, answer.text
    with tarfile.open(fileobj=io.BytesIO(answer.content)) as tar:
        (entry,) = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        config = json.loads(tar.extractfile(entry["Config"]).read())  # type: ignore[union-attr]
        layer = tar.extractfile(entry["Layers"][0]).read()  # type: ignore[union-attr]
    assert comparable(read_flat(layer)) == comparable(reference_flatten(LAYERS))
    assert config["config"]["Env"] == ["FROM=schema1"]
    assert config["rootfs"]["diff_ids"] == [_sha256(layer)]
    assert (config["os"], config["architecture"]) == ("linux", "amd64")


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    # Module scope runs before the autouse fixture that opens the registry: say it here.
    application = make_app(tmp_path_factory.mktemp("fuzz"), {}, auth={"enabled": False})
    try:
        with TestClient(application.asgi) as client:
            push(client, "org/app", "v1", [layer_tar(ops) for ops in LAYERS])
            assert client.get("/c1/squash/org/app/v1").status_code == 200
            yield client
    finally:
        application.close()


_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    prefix=st.sampled_from(["/c1/squash/", "/c1/squash-signature/"]),
    name=st.one_of(st.just("org/app"), st.just("org/app/deeper"), _TEXT),
    reference=st.one_of(st.just("v1"), st.just("sha256:" + "a" * 64), _TEXT),
    platform=st.one_of(st.none(), st.just("linux/amd64"), st.just("linux/arm64/v8"), _TEXT),
    range_header=st.one_of(st.none(), st.just("bytes=0-10"), st.just("bytes=99999999-"), _TEXT),
)
def test_any_squash_request_is_answered_without_a_server_error(
    fuzzed: TestClient,
    prefix: str,
    name: str,
    reference: str,
    platform: str | None,
    range_header: str | None,
) -> None:
    from urllib.parse import quote

    params = {} if platform is None else {"platform": platform}
    headers = {} if range_header is None else {"Range": range_header.encode()}
    path = prefix + quote(name, safe="/") + "/" + quote(reference, safe="")
    answer = fuzzed.get(path, params=params, headers=headers)  # type: ignore[arg-type]
    assert answer.status_code in (200, 206, 400, 404, 405, 416), (
        path,
        answer.status_code,
        answer.text,
    )
    if answer.status_code >= 400:
        (error,) = answer.json()["errors"]
        assert error["code"] in {
            "NAME_INVALID",
            "NAME_UNKNOWN",
            "MANIFEST_UNKNOWN",
            "NOT_FOUND",
            "RANGE_INVALID",
            "UNSUPPORTED",
        }, (path, error)
        assert len(error["message"]) <= 200
