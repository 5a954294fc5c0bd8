"""podman against the registry: pull, push, and a ``COPY``-only build pushed back.

podman runs as root with throw-away storage (``--root`` in the test's tmp dir, ``--runroot`` in a
short /tmp dir since podman refuses one over 50 characters, vfs driver, cgroupfs, file events,
``--network-config-dir`` of its own) and test-owned config files. ``podman run`` does not work on
these machines, so nothing here starts a container: a build with only ``COPY`` needs no runtime.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

from support.e2e_clients import Podman, Skopeo
from support.e2e_images import (
    BuiltImage,
    FileSpec,
    OciLayout,
    layer,
    layout_descriptor,
    layout_image_files,
    layout_json,
)


def _push_base(skopeo: Skopeo, layout: OciLayout, repo: str) -> BuiltImage:
    image = layout.add_image(
        [
            layer(FileSpec.literal("etc/os-release", b'ID="moorage-e2e"\n')),
            layer(FileSpec("usr/lib/base.bin", 300_000, 17), FileSpec.literal("bin/true", b"")),
        ],
        labels={"org.example.base": "yes", "org.opencontainers.image.version": "1.0"},
        tag="base",
    )
    skopeo.copy(f"oci:{layout.root}:base", skopeo.ref(repo, "base"), "--preserve-digests")
    return image


def test_podman_pulls_and_pushes(
    podman: Podman, skopeo: Skopeo, repo: str, layout_dir: Callable[[str], Path]
) -> None:
    base = _push_base(skopeo, OciLayout(layout_dir("src")), repo)
    ref = podman.image_ref(repo, "base")

    podman.pull(ref)
    local = podman.inspect_image(ref)
    assert local["Labels"] == base.config["config"]["Labels"]
    assert local["RootFS"]["Layers"] == base.diff_ids
    assert local["Architecture"] == "amd64"
    assert local["Digest"] == base.digest
    assert base.digest in local["RepoDigests"][0]

    # Push under another repository and tag: the registry gets the same layers and config.
    pushed_repo = f"{repo}-pushed"
    podman.push(ref, f"docker://{podman.image_ref(pushed_repo, 'again')}")
    info = skopeo.inspect(skopeo.ref(pushed_repo, "again"))
    assert info["Labels"] == base.config["config"]["Labels"]
    assert skopeo.list_tags(pushed_repo) == ["again"]
    config = json.loads(skopeo.inspect_raw(skopeo.ref(pushed_repo, "again"), "--config"))
    assert config["rootfs"]["diff_ids"] == base.diff_ids

    # Pull what podman pushed and compare file contents.
    pulled = layout_dir("pulled")
    skopeo.copy(skopeo.ref(pushed_repo, "again"), f"oci:{pulled}:again")
    manifest = layout_json(pulled, layout_descriptor(pulled, "again")["digest"])
    assert layout_image_files(pulled, manifest) == base.files


def test_podman_builds_from_the_registry_and_pushes_back(
    podman: Podman, skopeo: Skopeo, repo: str, layout_dir: Callable[[str], Path], tmp_path: Path
) -> None:
    base = _push_base(skopeo, OciLayout(layout_dir("src")), repo)
    context = tmp_path / "context"
    context.mkdir()
    added = b"copied into the image by podman build\n" * 100
    (context / "file").write_bytes(added)
    (context / "Containerfile").write_text(
        f"FROM {podman.image_ref(repo, 'base')}\n"
        "LABEL org.example.built=by-podman\n"
        "COPY file /file\n"
    )

    target = podman.image_ref(repo, "built")
    podman.build(context, target)  # --pull: the base comes from our registry
    podman.push(target, f"docker://{target}")

    info = skopeo.inspect(skopeo.ref(repo, "built"))
    assert info["Labels"]["org.example.built"] == "by-podman"
    assert info["Labels"]["org.example.base"] == "yes"
    assert info["Layers"][: len(base.layer_digests)] == base.layer_digests
    assert len(info["Layers"]) == len(base.layer_digests) + 1
    assert sorted(skopeo.list_tags(repo)) == ["base", "built"]

    pulled = layout_dir("pulled")
    skopeo.copy(skopeo.ref(repo, "built"), f"oci:{pulled}:built", "--preserve-digests")
    descriptor = layout_descriptor(pulled, "built")
    assert descriptor["digest"] == info["Digest"]
    manifest = layout_json(pulled, descriptor["digest"])
    config = layout_json(pulled, manifest["config"]["digest"])
    assert config["rootfs"]["diff_ids"][: len(base.diff_ids)] == base.diff_ids
    files = layout_image_files(pulled, manifest)
    assert files["file"] == "sha256:" + hashlib.sha256(added).hexdigest()
    assert {k: v for k, v in files.items() if k != "file"} == base.files

    # And podman itself pulls it back (a fresh name resolves through the registry).
    podman("rmi", "--force", target, timeout=120)
    podman.pull(target)
    assert podman.inspect_image(target)["Digest"] == info["Digest"]
