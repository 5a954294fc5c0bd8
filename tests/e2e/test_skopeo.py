"""skopeo against the registry: copy in/out (single- and multi-arch), inspect, list-tags, delete."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from support.e2e_clients import ClientError, Skopeo
from support.e2e_images import (
    MEDIA_INDEX,
    BuiltImage,
    FileSpec,
    MiB,
    OciLayout,
    layer,
    layout_blob,
    layout_descriptor,
    layout_image_files,
    layout_json,
    sha256_file,
)

LABELS = {"org.opencontainers.image.title": "moorage e2e", "org.example.seed": "7"}


def small_image(layout: OciLayout, tag: str, seed: int = 1) -> BuiltImage:
    """Three layers: a few bytes, 64 KiB of random bytes, 1 MiB of compressible text."""
    return layout.add_image(
        [
            layer(FileSpec.literal("etc/hello.txt", b"hi\n")),
            layer(FileSpec("opt/app/random.bin", 64 * 1024 + seed, seed)),
            layer(FileSpec.literal("usr/share/doc/lines.txt", b"moorage e2e line\n" * 65536)),
        ],
        labels={**LABELS, "org.example.seed": str(seed)},
        tag=tag,
    )


def assert_pulled_equals(pulled: Path, tag: str, image: BuiltImage) -> None:
    """The layout a client pulled into holds exactly the image we built."""
    descriptor = layout_descriptor(pulled, tag)
    assert descriptor["digest"] == image.digest
    assert layout_blob(pulled, image.digest) == image.manifest_bytes
    manifest = layout_json(pulled, image.digest)
    config = layout_json(pulled, manifest["config"]["digest"])
    assert config == image.config
    assert config["rootfs"]["diff_ids"] == image.diff_ids
    for digest in image.layer_digests:
        algorithm, hex_digest = digest.split(":")
        assert sha256_file(pulled / "blobs" / algorithm / hex_digest) == digest
    assert layout_image_files(pulled, manifest) == image.files


def test_single_arch_copy_in_inspect_and_copy_out(
    skopeo: Skopeo, repo: str, layout_dir: Callable[[str], Path]
) -> None:
    source = OciLayout(layout_dir("src"))
    image = small_image(source, "v1")

    skopeo.copy(f"oci:{source.root}:v1", skopeo.ref(repo, "v1"), "--preserve-digests")

    info = skopeo.inspect(skopeo.ref(repo, "v1"))
    assert info["Digest"] == image.digest
    assert info["Labels"] == image.config["config"]["Labels"]
    assert info["Layers"] == image.layer_digests
    assert info["Architecture"] == "amd64"
    assert info["Os"] == "linux"
    assert "v1" in info["RepoTags"]
    assert skopeo.inspect_raw(skopeo.ref(repo, "v1")) == image.manifest_bytes
    raw_config = skopeo.inspect_raw(skopeo.ref(repo, "v1"), "--config")
    assert json.loads(raw_config) == image.config
    by_digest = skopeo.inspect(skopeo.ref(repo, image.digest))
    assert by_digest["Digest"] == image.digest

    pulled = layout_dir("pulled")
    skopeo.copy(skopeo.ref(repo, "v1"), f"oci:{pulled}:v1", "--preserve-digests")
    assert_pulled_equals(pulled, "v1", image)

    pulled_by_digest = layout_dir("pulled-by-digest")
    skopeo.copy(skopeo.ref(repo, image.digest), f"oci:{pulled_by_digest}:d")
    assert layout_descriptor(pulled_by_digest, "d")["digest"] == image.digest


def test_copy_between_repositories_keeps_digests(
    skopeo: Skopeo, repo: str, layout_dir: Callable[[str], Path]
) -> None:
    source = OciLayout(layout_dir("src"))
    image = small_image(source, "v1", seed=2)
    skopeo.copy(f"oci:{source.root}:v1", skopeo.ref(repo, "v1"), "--preserve-digests")

    # registry → registry: skopeo mounts the blobs across repositories or re-uploads them.
    other = f"{repo}-copy"
    skopeo.copy(skopeo.ref(repo, "v1"), skopeo.ref(other, "copied"), "--preserve-digests")
    info = skopeo.inspect(skopeo.ref(other, "copied"))
    assert info["Digest"] == image.digest
    assert info["Layers"] == image.layer_digests

    pulled = layout_dir("pulled")
    skopeo.copy(skopeo.ref(other, "copied"), f"oci:{pulled}:copied")
    assert_pulled_equals(pulled, "copied", image)


def test_multi_arch_index_round_trips_with_all(
    skopeo: Skopeo, repo: str, layout_dir: Callable[[str], Path]
) -> None:
    source = OciLayout(layout_dir("src"))
    amd64 = source.add_image(
        [layer(FileSpec.literal("arch.txt", b"amd64\n")), layer(FileSpec("bin/tool", 4096, 11))],
        labels={"org.example.arch": "amd64"},
        architecture="amd64",
    )
    arm64 = source.add_image(
        [layer(FileSpec.literal("arch.txt", b"arm64\n")), layer(FileSpec("bin/tool", 4096, 12))],
        labels={"org.example.arch": "arm64"},
        architecture="arm64",
        variant="v8",
    )
    index = source.add_index([amd64, arm64], annotations={"org.example.multi": "yes"}, tag="multi")

    skopeo.copy(f"oci:{source.root}:multi", skopeo.ref(repo, "multi"), "--all",
                "--preserve-digests")  # fmt: skip

    assert skopeo.inspect_raw(skopeo.ref(repo, "multi")) == index.index_bytes
    info_amd64 = skopeo.inspect(skopeo.ref(repo, "multi"), "--override-arch", "amd64")
    assert info_amd64["Architecture"] == "amd64"
    assert info_amd64["Labels"] == {"org.example.arch": "amd64"}
    assert info_amd64["Layers"] == amd64.layer_digests
    info_arm64 = skopeo.inspect(skopeo.ref(repo, "multi"), "--override-arch", "arm64")
    assert info_arm64["Architecture"] == "arm64"
    assert info_arm64["Layers"] == arm64.layer_digests
    for child in (amd64, arm64):
        assert skopeo.inspect_raw(skopeo.ref(repo, child.digest)) == child.manifest_bytes

    pulled = layout_dir("pulled")
    skopeo.copy(skopeo.ref(repo, "multi"), f"oci:{pulled}:multi", "--all", "--preserve-digests")
    descriptor = layout_descriptor(pulled, "multi")
    assert descriptor["digest"] == index.digest
    assert descriptor["mediaType"] == MEDIA_INDEX
    assert layout_blob(pulled, index.digest) == index.index_bytes
    for child in (amd64, arm64):
        assert layout_blob(pulled, child.digest) == child.manifest_bytes
        assert layout_image_files(pulled, child.manifest) == child.files

    # One platform out of the index, by its manifest digest.
    single = layout_dir("arm64-only")
    skopeo.copy(skopeo.ref(repo, arm64.digest), f"oci:{single}:arm64")
    assert layout_descriptor(single, "arm64")["digest"] == arm64.digest
    assert layout_image_files(single, arm64.manifest) == {
        "arch.txt": "sha256:" + hashlib.sha256(b"arm64\n").hexdigest(),
        "bin/tool": arm64.files["bin/tool"],
    }


def test_list_tags_lists_every_pushed_tag(
    skopeo: Skopeo, repo: str, layout_dir: Callable[[str], Path]
) -> None:
    source = OciLayout(layout_dir("src"))
    first = small_image(source, "v1", seed=3)
    second = small_image(source, "v2", seed=4)
    for tag in ("v1", "1.0", "latest"):
        skopeo.copy(f"oci:{source.root}:v1", skopeo.ref(repo, tag))
    skopeo.copy(f"oci:{source.root}:v2", skopeo.ref(repo, "v2"))

    assert sorted(skopeo.list_tags(repo)) == ["1.0", "latest", "v1", "v2"]
    assert skopeo.inspect(skopeo.ref(repo, "latest"))["Digest"] == first.digest
    assert skopeo.inspect(skopeo.ref(repo, "v2"))["Digest"] == second.digest
    assert sorted(skopeo.inspect(skopeo.ref(repo, "v1"))["RepoTags"]) == [
        "1.0",
        "latest",
        "v1",
        "v2",
    ]

    # Moving a tag: "latest" now points at the second image.
    skopeo.copy(f"oci:{source.root}:v2", skopeo.ref(repo, "latest"))
    assert skopeo.inspect(skopeo.ref(repo, "latest"))["Digest"] == second.digest
    assert skopeo.inspect(skopeo.ref(repo, "v1"))["Digest"] == first.digest


def test_delete_then_inspect_fails(
    skopeo: Skopeo, repo: str, layout_dir: Callable[[str], Path]
) -> None:
    source = OciLayout(layout_dir("src"))
    doomed = small_image(source, "doomed", seed=5)
    kept = small_image(source, "kept", seed=6)
    skopeo.copy(f"oci:{source.root}:doomed", skopeo.ref(repo, "doomed"))
    skopeo.copy(f"oci:{source.root}:kept", skopeo.ref(repo, "kept"))
    assert skopeo.inspect(skopeo.ref(repo, "doomed"))["Digest"] == doomed.digest

    # skopeo resolves the tag and deletes the manifest by digest.
    skopeo.delete(skopeo.ref(repo, "doomed"))

    for ref in (skopeo.ref(repo, "doomed"), skopeo.ref(repo, doomed.digest)):
        with pytest.raises(ClientError) as failure:
            skopeo.inspect(ref)
        assert "manifest unknown" in failure.value.stderr.lower()
    assert "doomed" not in skopeo.list_tags(repo)
    assert skopeo.inspect(skopeo.ref(repo, "kept"))["Digest"] == kept.digest

    # Deleting by digest works too.
    skopeo.delete(skopeo.ref(repo, kept.digest))
    with pytest.raises(ClientError):
        skopeo.inspect(skopeo.ref(repo, "kept"))


@pytest.mark.slow
def test_layer_of_100_mib_round_trips(
    skopeo: Skopeo, repo: str, layout_dir: Callable[[str], Path]
) -> None:
    source = OciLayout(layout_dir("src"))
    big = 100 * MiB + 12345
    image = source.add_image(
        [
            layer(FileSpec.literal("small.txt", b"tiny\n")),
            # Stored (level-0) gzip of random bytes: the blob itself is > 100 MiB.
            layer(FileSpec("data/big.bin", big, 42), compresslevel=0),
        ],
        labels={"org.example.size": str(big)},
        tag="big",
    )
    assert image.manifest["layers"][1]["size"] > 100 * MiB

    skopeo.copy(f"oci:{source.root}:big", skopeo.ref(repo, "big"), "--preserve-digests",
                timeout=600)  # fmt: skip
    info = skopeo.inspect(skopeo.ref(repo, "big"))
    assert info["Digest"] == image.digest
    assert info["Layers"] == image.layer_digests

    pulled = layout_dir("pulled")
    skopeo.copy(skopeo.ref(repo, "big"), f"oci:{pulled}:big", "--preserve-digests", timeout=600)
    assert_pulled_equals(pulled, "big", image)
    assert (pulled / "blobs" / "sha256" / image.layer_digests[1].split(":")[1]).stat().st_size == (
        image.manifest["layers"][1]["size"]
    )


def test_missing_image_is_reported_not_found(skopeo: Skopeo, repo: str) -> None:
    with pytest.raises(ClientError) as failure:
        skopeo.inspect(skopeo.ref(repo, "nope"))
    stderr = failure.value.stderr.lower()
    assert "manifest unknown" in stderr or "name unknown" in stderr or "not found" in stderr


def test_one_component_name_is_the_library_repository(
    skopeo: Skopeo, layout_dir: Callable[[str], Path]
) -> None:
    """`host/name`, the most common first push, lands in `library/name`."""
    source = OciLayout(layout_dir("src"))
    image = small_image(source, "v1", seed=5)
    name = f"solo{uuid.uuid4().hex[:8]}"
    skopeo.copy(f"oci:{source.root}:v1", skopeo.ref(name, "v1"), "--preserve-digests")
    assert skopeo.inspect(skopeo.ref(name, "v1"))["Digest"] == image.digest
    assert skopeo.inspect(skopeo.ref(f"library/{name}", "v1"))["Digest"] == image.digest
    pulled = layout_dir("pulled")
    skopeo.copy(skopeo.ref(name, "v1"), f"oci:{pulled}:v1")
    assert_pulled_equals(pulled, "v1", image)
