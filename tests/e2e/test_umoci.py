"""umoci builds and modifies images in OCI layouts; skopeo carries them to the registry and back."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from support.e2e_clients import Skopeo, Umoci
from support.e2e_images import (
    FileSpec,
    OciLayout,
    layer,
    layout_blob,
    layout_descriptor,
    layout_json,
    seeded_chunks,
    sha256_file,
)


def _write_seeded(path: Path, size: int, seed: int) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with path.open("wb") as handle:
        for piece in seeded_chunks(seed, size):
            handle.write(piece)
            digest.update(piece)
    return digest.hexdigest()


def _unpack(umoci: Umoci, image: str, bundle: Path) -> Path:
    umoci("unpack", "--image", image, str(bundle))
    return bundle / "rootfs"


def test_umoci_built_image_push_and_pull(
    umoci: Umoci, skopeo: Skopeo, repo: str, tmp_path: Path
) -> None:
    layout = tmp_path / "umoci-layout"
    umoci("init", "--layout", str(layout))
    umoci("new", "--image", f"{layout}:app")
    source = tmp_path / "src"
    expected = {
        "opt/data/tiny.txt": hashlib.sha256(b"x").hexdigest(),
        "opt/data/random.bin": _write_seeded(source / "data" / "random.bin", 3 * 1024 * 1024, 9),
    }
    (source / "data" / "tiny.txt").write_bytes(b"x")
    umoci("insert", "--image", f"{layout}:app", str(source / "data"), "/opt/data")
    (source / "motd").write_text("built by umoci\n")
    expected["etc/motd"] = hashlib.sha256(b"built by umoci\n").hexdigest()
    umoci("insert", "--image", f"{layout}:app", str(source / "motd"), "/etc/motd")
    umoci("config", "--image", f"{layout}:app", "--config.label", "org.example.tool=umoci",
          "--config.env", "GREETING=hello", "--author", "moorage-e2e")  # fmt: skip
    built = layout_descriptor(layout, "app")
    manifest = layout_json(layout, built["digest"])
    assert len(manifest["layers"]) == 2

    skopeo.copy(f"oci:{layout}:app", skopeo.ref(repo, "app"), "--preserve-digests")
    info = skopeo.inspect(skopeo.ref(repo, "app"))
    assert info["Digest"] == built["digest"]
    assert info["Labels"] == {"org.example.tool": "umoci"}
    assert "GREETING=hello" in info["Env"]
    assert info["Layers"] == [d["digest"] for d in manifest["layers"]]

    pulled = tmp_path / "pulled"
    skopeo.copy(skopeo.ref(repo, "app"), f"oci:{pulled}:app", "--preserve-digests")
    assert layout_descriptor(pulled, "app")["digest"] == built["digest"]
    assert layout_blob(pulled, built["digest"]) == layout_blob(layout, built["digest"])
    config = layout_json(pulled, manifest["config"]["digest"])
    assert config == layout_json(layout, manifest["config"]["digest"])
    assert [h.get("created_by") for h in config["history"]][:2] == ["umoci insert", "umoci insert"]

    rootfs = _unpack(umoci, f"{pulled}:app", tmp_path / "bundle")
    for relative, digest in expected.items():
        assert sha256_file(rootfs / relative) == "sha256:" + digest, relative
    runtime = json.loads((tmp_path / "bundle" / "config.json").read_text())
    assert "GREETING=hello" in runtime["process"]["env"]


def test_umoci_modifies_a_pulled_image_and_pushes_it_back(
    umoci: Umoci, skopeo: Skopeo, repo: str, tmp_path: Path
) -> None:
    # A hand-built base image goes in with skopeo ...
    source = OciLayout(tmp_path / "src")
    base = source.add_image(
        [layer(FileSpec.literal("etc/base.txt", b"base\n"), FileSpec("lib/blob", 200_000, 5))],
        labels={"org.example.stage": "base"},
        tag="base",
    )
    skopeo.copy(f"oci:{source.root}:base", skopeo.ref(repo, "base"), "--preserve-digests")

    # ... comes out into a fresh layout, umoci adds a layer and a label under a new tag ...
    work = tmp_path / "work"
    skopeo.copy(skopeo.ref(repo, "base"), f"oci:{work}:base", "--preserve-digests")
    umoci("tag", "--image", f"{work}:base", "derived")
    addition = tmp_path / "added.txt"
    addition.write_bytes(b"added by umoci\n")
    umoci("insert", "--image", f"{work}:derived", str(addition), "/etc/added.txt")
    umoci("config", "--image", f"{work}:derived", "--config.label", "org.example.stage=derived")
    derived = layout_descriptor(work, "derived")
    derived_manifest = layout_json(work, derived["digest"])
    assert derived_manifest["layers"][0] == base.manifest["layers"][0]

    # ... and goes back in: the base layer is already there, only the new one is uploaded.
    skopeo.copy(f"oci:{work}:derived", skopeo.ref(repo, "derived"), "--preserve-digests")
    info = skopeo.inspect(skopeo.ref(repo, "derived"))
    assert info["Digest"] == derived["digest"]
    assert info["Labels"] == {"org.example.stage": "derived"}
    assert info["Layers"][0] == base.layer_digests[0]
    assert len(info["Layers"]) == 2
    assert skopeo.inspect(skopeo.ref(repo, "base"))["Digest"] == base.digest

    pulled = tmp_path / "pulled"
    skopeo.copy(skopeo.ref(repo, "derived"), f"oci:{pulled}:derived")
    rootfs = _unpack(umoci, f"{pulled}:derived", tmp_path / "bundle")
    assert (rootfs / "etc" / "base.txt").read_bytes() == b"base\n"
    assert (rootfs / "etc" / "added.txt").read_bytes() == b"added by umoci\n"
    assert sha256_file(rootfs / "lib" / "blob") == base.files["lib/blob"]
    assert os.path.getsize(rootfs / "lib" / "blob") == 200_000
