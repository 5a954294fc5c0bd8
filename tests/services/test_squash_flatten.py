"""The flattener against a reference model of a file system (hypothesis: random stacks of
layers with files, directories, symbolic and hard links, whiteouts and opaque
directories), the named cases of the issue one by one, the compressions layers come in,
and the docker-archive around the flat layer."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import json
import lzma
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from moorage.services.squash.archive import FlatLayer, docker_archive, squashed_config
from moorage.services.squash.flatten import LayerFormatError, LayerOpener, flatten, normalize
from moorage.services.squash.streams import (
    CheckedReader,
    ChunkReader,
    DigestMismatchError,
    decompressed,
)
from support.squash_layers import Op, comparable, layer_tar, read_flat, reference_flatten


def _opener(data: bytes) -> LayerOpener:
    @contextmanager
    def open_layer() -> Iterator[IO[bytes]]:
        yield decompressed(
            ChunkReader(iter([data[i : i + 7000] for i in range(0, len(data), 7000)]))
        )

    return open_layer


def _flat(layers: list[bytes]) -> bytes:
    out = io.BytesIO()
    flatten([_opener(layer) for layer in layers], out)
    return out.getvalue()


def _check(layers: list[list[Op]], *, dot_prefix: bool = False) -> dict[str, object]:
    flat = read_flat(_flat([layer_tar(ops, dot_prefix=dot_prefix) for ops in layers]))
    expected = reference_flatten(layers)
    assert comparable(flat) == comparable(expected)
    return dict(flat)


NAMES = st.sampled_from(["a", "b", "c"])
PATHS = st.lists(NAMES, min_size=1, max_size=3).map("/".join)
MODES = st.sampled_from([0o644, 0o755, 0o600, 0o4755, 0o700])


@st.composite
def operations(draw: st.DrawFn) -> Op:
    kind = draw(
        st.sampled_from(["file", "file", "dir", "dir", "symlink", "hardlink", "whiteout", "opaque"])
    )
    path = draw(PATHS)
    if kind == "file":
        return Op(
            "file", path, draw(st.binary(max_size=40)), draw(MODES), uid=draw(st.integers(0, 3))
        )
    if kind == "dir":
        return Op("dir", path, mode=draw(MODES), mtime=draw(st.integers(0, 2**33)))
    if kind == "symlink":
        return Op("symlink", path, target=draw(st.sampled_from(["a", "../b", "/c/a", "x"])))
    if kind == "hardlink":
        return Op("hardlink", path, target=draw(PATHS))
    if kind == "opaque":
        return Op("opaque", draw(st.one_of(st.just(""), PATHS)))
    return Op("whiteout", path)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(operations(), max_size=10), min_size=1, max_size=5), st.booleans())
def test_random_layer_stacks_flatten_as_the_reference_model_says(
    layers: list[list[Op]], dot_prefix: bool
) -> None:
    _check(layers, dot_prefix=dot_prefix)


def test_the_named_cases_of_the_issue() -> None:
    base = [
        Op("dir", "etc", mode=0o755),
        Op("file", "etc/passwd", b"root:x:0:0\n", 0o644),
        Op("file", "etc/shadow", b"secret", 0o600, uid=0, gid=42),
        Op("dir", "var/cache", mode=0o755),
        Op("file", "var/cache/one", b"1"),
        Op("file", "var/cache/two", b"2"),
        Op("file", "bin/tool", b"#!/bin/sh\n", 0o4755, uid=1000, gid=1000),
        Op("hardlink", "bin/tool-alias", target="bin/tool"),
        Op("file", "data/old", b"old content"),
        Op("hardlink", "data/keeps-old", target="data/old"),
        Op("file", "doomed", b"doomed"),
        Op("hardlink", "survivor", target="doomed"),
        Op("symlink", "lib", target="usr/lib"),
    ]
    middle = [
        Op("file", "etc/passwd", b"root:x:0:0\nuser:x:1000:1000\n", 0o644),  # replaced
        Op("opaque", "var/cache"),
        Op("file", "var/cache/three", b"3"),
        Op("whiteout", "doomed"),
        Op("file", "data/old", b"new content"),  # the link keeps the old content
    ]
    top = [
        Op("whiteout", "etc/shadow"),
        Op("symlink", "etc/localtime", target="/usr/share/zoneinfo/UTC"),
    ]
    flat = _check([base, middle, top])
    assert set(flat) >= {"etc/passwd", "var/cache/three", "survivor", "data/keeps-old", "lib"}
    assert not {"etc/shadow", "var/cache/one", "var/cache/two", "doomed"} & set(flat)


def test_a_hard_link_whose_target_is_removed_later_keeps_the_content() -> None:
    data = _flat(
        [
            layer_tar([Op("file", "x", b"payload", 0o640, uid=7), Op("hardlink", "y", target="x")]),
            layer_tar([Op("whiteout", "x")]),
        ]
    )
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        (member,) = tar.getmembers()
        assert (member.name, member.isreg(), member.mode, member.uid) == ("y", True, 0o640, 7)
        extracted = tar.extractfile(member)
        assert extracted is not None and extracted.read() == b"payload"


def test_a_dangling_hard_link_is_dropped() -> None:
    assert read_flat(_flat([layer_tar([Op("hardlink", "y", target="nowhere")])])) == {}


def test_extended_attributes_long_names_and_owner_names_are_kept() -> None:
    long_name = "d/" + "n" * 180
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(long_name)
        info.size, info.uname, info.gname, info.mtime = 3, "alice", "staff", 1_600_000_000.5
        info.pax_headers = {"SCHILY.xattr.security.capability": "\x01\x00"}
        tar.addfile(info, io.BytesIO(b"abc"))
    with tarfile.open(fileobj=io.BytesIO(_flat([buffer.getvalue()]))) as tar:
        (member,) = tar.getmembers()
    assert member.name == long_name and (member.uname, member.gname) == ("alice", "staff")
    assert member.pax_headers["SCHILY.xattr.security.capability"] == "\x01\x00"
    assert member.mtime == 1_600_000_000.5


@pytest.mark.parametrize(
    "compress",
    [
        lambda data: data,
        gzip.compress,
        lambda data: gzip.compress(data[:700]) + gzip.compress(data[700:]),  # multi-member
        lambda data: zstandard.ZstdCompressor().compress(data),
        lambda data: (
            zstandard.ZstdCompressor().compress(data[:700])
            + zstandard.ZstdCompressor().compress(data[700:])
        ),
        bz2.compress,
        lzma.compress,
    ],
    ids=["plain", "gzip", "gzip-members", "zstd", "zstd-frames", "bzip2", "xz"],
)
def test_every_layer_compression_reads(compress: object) -> None:
    ops = [Op("file", f"f{i}", bytes([i]) * 100) for i in range(20)]
    layer = compress(layer_tar(ops))  # type: ignore[operator]
    assert comparable(read_flat(_flat([layer]))) == comparable(reference_flatten([ops]))


def test_a_layer_that_is_not_a_tar_is_refused() -> None:
    with pytest.raises(LayerFormatError):
        _flat([gzip.compress(b"not a tar at all" * 100)])


def test_a_layer_whose_bytes_do_not_match_its_digest_is_refused() -> None:
    data = layer_tar([Op("file", "f", b"x")])
    reader = CheckedReader(ChunkReader(iter([data])), "sha256:" + "0" * 64)
    with pytest.raises(DigestMismatchError):
        reader.read()
    good = CheckedReader(ChunkReader(iter([data])), "sha256:" + hashlib.sha256(data).hexdigest())
    assert good.read() == data


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("./a/b/", "a/b"),
        ("/a//b", "a/b"),
        ("a/./b", "a/b"),
        (".", None),
        ("./", None),
        ("a/../b", None),
    ],
)
def test_member_names_are_normalized(name: str, expected: str | None) -> None:
    assert normalize(name) == expected


def test_entries_leaving_the_root_are_skipped() -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name in ("../escape", "a/../../escape", "ok"):
            info = tarfile.TarInfo(name)
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
    assert set(read_flat(_flat([buffer.getvalue()]))) == {"ok"}


def test_the_archive_names_config_layer_and_tag() -> None:
    flat = _flat([layer_tar([Op("file", "hello", b"world")])])
    file = io.BytesIO(flat)
    layer = FlatLayer(file, len(flat), hashlib.sha256(flat).hexdigest())
    original = {
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-05-06T07:08:09Z",
        "config": {"Env": ["A=1"], "Entrypoint": ["/hello"], "Labels": {"k": "v"}},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "1" * 64, "sha256:" + "2" * 64]},
        "history": [{"created_by": "one"}, {"created_by": "two"}],
    }
    config = squashed_config(original, layer, "squashed")
    archive = b"".join(docker_archive(config, layer, ("ns/repo", "v1")))
    assert len(archive) % tarfile.RECORDSIZE == 0
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        names = tar.getnames()
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        (entry,) = manifest
        stored_config = json.loads(tar.extractfile(entry["Config"]).read())  # type: ignore[union-attr]
        (layer_name,) = entry["Layers"]
        layer_bytes = tar.extractfile(layer_name).read()  # type: ignore[union-attr]
        repositories = json.loads(tar.extractfile("repositories").read())  # type: ignore[union-attr]
    assert "manifest.json" in names and entry["RepoTags"] == ["ns/repo:v1"]
    assert layer_bytes == flat
    assert stored_config["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(flat).hexdigest()]
    assert len(stored_config["history"]) == 1
    assert stored_config["config"] == original["config"]
    assert (
        entry["Config"]
        == hashlib.sha256(tar_member(archive, entry["Config"])).hexdigest() + ".json"
    )
    assert repositories == {"ns/repo": {"v1": layer.sha256_hex}}
    again = b"".join(docker_archive(config, layer, ("ns/repo", "v1")))
    assert again == archive  # the same inputs, the same bytes (signatures stay valid)


def tar_member(archive: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        extracted = tar.extractfile(name)
        assert extracted is not None
        return extracted.read()
