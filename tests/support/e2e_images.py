"""Build OCI image layouts on disk by hand, deterministically, for the end-to-end tests.

Every file inside a layer is either literal bytes or pseudo-random bytes drawn from a seed, so the
same specification always gives the same layer digests. Layers are written in streaming fashion: a
file of any size is generated chunk by chunk, tarred, gzipped and hashed on the way to disk (the
compressed digest and the uncompressed ``diff_id`` in one pass), never held in memory whole.

``OciLayout`` writes an `OCI image layout`_ (``oci-layout``, ``blobs/sha256/…``, ``index.json``)
that skopeo reads as ``oci:DIR:TAG`` and umoci as ``DIR:TAG``.

.. _OCI image layout: https://github.com/opencontainers/image-spec/blob/main/image-layout.md
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import random
import tarfile
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
REF_NAME = "org.opencontainers.image.ref.name"

KiB = 1024
MiB = 1024 * KiB
CHUNK = 1 * MiB
FIXED_MTIME = 1_700_000_000  # 2023-11-14: every tar entry and config date uses it


# -------------------------------------------------------------------------------------------------
# Deterministic content


def seeded_chunks(seed: int, size: int, chunk: int = CHUNK) -> Iterator[bytes]:
    """``size`` pseudo-random (incompressible) bytes from ``seed``, ``chunk`` bytes at a time."""
    rng = random.Random(seed)
    left = size
    while left > 0:
        n = min(chunk, left)
        yield rng.randbytes(n)
        left -= n


def seeded_sha256(seed: int, size: int) -> str:
    digest = hashlib.sha256()
    for piece in seeded_chunks(seed, size):
        digest.update(piece)
    return "sha256:" + digest.hexdigest()


class _ChunkReader(io.RawIOBase):
    """A read-only file object over an iterator of byte chunks (what ``tarfile`` needs)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while not self._pending:
            try:
                self._pending = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(view), len(self._pending))
        view[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


class _HashingWriter(io.RawIOBase):
    """Passes writes to ``target`` while counting and hashing them."""

    def __init__(self, target: io.RawIOBase | io.BufferedIOBase | Any) -> None:
        self._target = target
        self.sha256 = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self._target.write(view)
        self.sha256.update(view)
        self.size += len(view)
        return len(view)

    @property
    def digest(self) -> str:
        return "sha256:" + self.sha256.hexdigest()


@dataclass(frozen=True)
class FileSpec:
    """One regular file in a layer: literal ``data``, or ``size`` bytes drawn from ``seed``."""

    path: str
    size: int = 0
    seed: int = 0
    data: bytes | None = None
    mode: int = 0o644

    @classmethod
    def literal(cls, path: str, data: bytes, mode: int = 0o644) -> FileSpec:
        return cls(path=path, size=len(data), data=data, mode=mode)

    def chunks(self) -> Iterator[bytes]:
        if self.data is not None:
            yield self.data
        else:
            yield from seeded_chunks(self.seed, self.size)

    @property
    def sha256(self) -> str:
        if self.data is not None:
            return "sha256:" + hashlib.sha256(self.data).hexdigest()
        return seeded_sha256(self.seed, self.size)


@dataclass(frozen=True)
class LayerSpec:
    files: tuple[FileSpec, ...]
    gzip: bool = True
    # 0 = "stored" deflate blocks: still valid gzip, and fast for incompressible content.
    compresslevel: int = 6

    @property
    def media_type(self) -> str:
        return MEDIA_LAYER_GZIP if self.gzip else MEDIA_LAYER_TAR


def layer(*files: FileSpec, gzip: bool = True, compresslevel: int = 6) -> LayerSpec:
    return LayerSpec(files=tuple(files), gzip=gzip, compresslevel=compresslevel)


def _tar_info(
    name: str, *, size: int = 0, mode: int = 0o644, is_dir: bool = False
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name.lstrip("/"))
    info.size = 0 if is_dir else size
    info.mode = mode
    info.type = tarfile.DIRTYPE if is_dir else tarfile.REGTYPE
    info.mtime = FIXED_MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


@dataclass(frozen=True)
class WrittenBlob:
    digest: str
    size: int
    path: Path


@dataclass(frozen=True)
class WrittenLayer:
    descriptor: dict[str, Any]
    diff_id: str
    spec: LayerSpec


def _parent_dirs(paths: Iterable[str]) -> list[str]:
    dirs: set[str] = set()
    for path in paths:
        parts = path.strip("/").split("/")[:-1]
        for i in range(1, len(parts) + 1):
            dirs.add("/".join(parts[:i]))
    return sorted(dirs)


def write_layer(spec: LayerSpec, out: Path) -> tuple[WrittenBlob, str]:
    """Write the layer blob to ``out``; return (compressed blob, diff_id)."""
    with out.open("wb") as raw:
        blob_hash = _HashingWriter(raw)
        compressor: Any = (
            gzip.GzipFile(
                filename="", mode="wb", fileobj=blob_hash, compresslevel=spec.compresslevel, mtime=0
            )
            if spec.gzip
            else None
        )
        tar_hash = _HashingWriter(compressor if compressor is not None else blob_hash)
        with tarfile.open(fileobj=tar_hash, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for directory in _parent_dirs(f.path for f in spec.files):
                tar.addfile(_tar_info(directory, mode=0o755, is_dir=True))
            for file in spec.files:
                info = _tar_info(file.path, size=file.size, mode=file.mode)
                tar.addfile(info, io.BufferedReader(_ChunkReader(file.chunks()), CHUNK))
        if compressor is not None:
            compressor.close()
    return WrittenBlob(blob_hash.digest, blob_hash.size, out), tar_hash.digest


# -------------------------------------------------------------------------------------------------
# Image layout


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def sha256_bytes(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while piece := handle.read(CHUNK):
            digest.update(piece)
    return "sha256:" + digest.hexdigest()


@dataclass
class BuiltImage:
    """What a test needs to know about an image it built (one platform)."""

    manifest_descriptor: dict[str, Any]
    manifest: dict[str, Any]
    manifest_bytes: bytes
    config: dict[str, Any]
    layers: list[WrittenLayer]

    @property
    def digest(self) -> str:
        return str(self.manifest_descriptor["digest"])

    @property
    def config_digest(self) -> str:
        return str(self.manifest["config"]["digest"])

    @property
    def layer_digests(self) -> list[str]:
        return [str(d["digest"]) for d in self.manifest["layers"]]

    @property
    def diff_ids(self) -> list[str]:
        return [layer.diff_id for layer in self.layers]

    @property
    def files(self) -> dict[str, str]:
        """Path (no leading slash) → sha256 of its content, over all layers (later wins)."""
        out: dict[str, str] = {}
        for written in self.layers:
            for file in written.spec.files:
                out[file.path.lstrip("/")] = file.sha256
        return out


@dataclass
class BuiltIndex:
    descriptor: dict[str, Any]
    index: dict[str, Any]
    index_bytes: bytes
    images: list[BuiltImage]

    @property
    def digest(self) -> str:
        return str(self.descriptor["digest"])


@dataclass
class OciLayout:
    """An OCI image layout directory that tests fill with images and indexes."""

    root: Path
    refs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        (self.root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (self.root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
        self._write_index()

    def blob_path(self, digest: str) -> Path:
        algorithm, hex_digest = digest.split(":", 1)
        return self.root / "blobs" / algorithm / hex_digest

    def add_bytes(self, data: bytes, media_type: str) -> dict[str, Any]:
        digest = sha256_bytes(data)
        self.blob_path(digest).write_bytes(data)
        return {"mediaType": media_type, "digest": digest, "size": len(data)}

    def add_layer(self, spec: LayerSpec) -> WrittenLayer:
        fd, name = tempfile.mkstemp(dir=self.root / "blobs", prefix=".layer-")
        os.close(fd)
        written, diff_id = write_layer(spec, Path(name))
        os.replace(written.path, self.blob_path(written.digest))
        descriptor = {"mediaType": spec.media_type, "digest": written.digest, "size": written.size}
        return WrittenLayer(descriptor=descriptor, diff_id=diff_id, spec=spec)

    def add_image(
        self,
        layers: Sequence[LayerSpec],
        *,
        labels: Mapping[str, str] | None = None,
        architecture: str = "amd64",
        os_name: str = "linux",
        variant: str | None = None,
        annotations: Mapping[str, str] | None = None,
        tag: str | None = None,
    ) -> BuiltImage:
        written = [self.add_layer(spec) for spec in layers]
        created = "2023-11-14T22:13:20Z"
        config: dict[str, Any] = {
            "created": created,
            "architecture": architecture,
            "os": os_name,
            "config": {
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                "Cmd": ["/bin/sh"],
                "Labels": dict(labels or {}),
            },
            "rootfs": {"type": "layers", "diff_ids": [w.diff_id for w in written]},
            "history": [
                {
                    "created": created,
                    "created_by": f"moorage-e2e: layer {i} ({len(w.spec.files)} files)",
                    "comment": "built by tests/support/e2e_images.py",
                }
                for i, w in enumerate(written)
            ],
        }
        if variant:
            config["variant"] = variant
        config_descriptor = self.add_bytes(canonical_json(config), MEDIA_CONFIG)
        manifest: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": MEDIA_MANIFEST,
            "config": config_descriptor,
            "layers": [w.descriptor for w in written],
        }
        if annotations:
            manifest["annotations"] = dict(annotations)
        manifest_bytes = canonical_json(manifest)
        descriptor = self.add_bytes(manifest_bytes, MEDIA_MANIFEST)
        platform: dict[str, Any] = {"architecture": architecture, "os": os_name}
        if variant:
            platform["variant"] = variant
        image = BuiltImage(
            manifest_descriptor={**descriptor, "platform": platform},
            manifest=manifest,
            manifest_bytes=manifest_bytes,
            config=config,
            layers=written,
        )
        if tag is not None:
            self.tag(tag, descriptor)
        return image

    def add_index(
        self,
        images: Sequence[BuiltImage],
        *,
        annotations: Mapping[str, str] | None = None,
        tag: str | None = None,
    ) -> BuiltIndex:
        index: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": MEDIA_INDEX,
            "manifests": [image.manifest_descriptor for image in images],
        }
        if annotations:
            index["annotations"] = dict(annotations)
        index_bytes = canonical_json(index)
        descriptor = self.add_bytes(index_bytes, MEDIA_INDEX)
        if tag is not None:
            self.tag(tag, descriptor)
        return BuiltIndex(
            descriptor=descriptor, index=index, index_bytes=index_bytes, images=list(images)
        )

    def tag(self, name: str, descriptor: Mapping[str, Any]) -> None:
        entry = {k: descriptor[k] for k in ("mediaType", "digest", "size")}
        entry["annotations"] = {REF_NAME: name}
        self.refs[name] = entry
        self._write_index()

    def _write_index(self) -> None:
        index = {"schemaVersion": 2, "manifests": list(self.refs.values())}
        (self.root / "index.json").write_text(json.dumps(index, indent=2))


# -------------------------------------------------------------------------------------------------
# Reading a layout back (after a client pulled into it)


def read_layout_index(root: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((root / "index.json").read_text())
    return loaded


def layout_descriptor(root: Path, tag: str) -> dict[str, Any]:
    """The index.json entry whose ref.name is ``tag``."""
    for entry in read_layout_index(root)["manifests"]:
        if entry.get("annotations", {}).get(REF_NAME) == tag:
            return dict(entry)
    raise KeyError(f"no {tag!r} in {root / 'index.json'}")


def layout_blob(root: Path, digest: str) -> bytes:
    algorithm, hex_digest = digest.split(":", 1)
    return (root / "blobs" / algorithm / hex_digest).read_bytes()


def layout_json(root: Path, digest: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(layout_blob(root, digest))
    return loaded


def layer_file_digests(blob: Path) -> dict[str, str]:
    """Regular files in a (possibly gzipped) tar layer: path → sha256 of content, streamed."""
    out: dict[str, str] = {}
    with tarfile.open(blob, mode="r|*") as tar:
        for member in tar:
            if not member.isfile():
                continue
            handle = tar.extractfile(member)
            assert handle is not None
            digest = hashlib.sha256()
            while piece := handle.read(CHUNK):
                digest.update(piece)
            out[member.name.lstrip("./").lstrip("/")] = "sha256:" + digest.hexdigest()
    return out


def layout_image_files(root: Path, manifest: Mapping[str, Any]) -> dict[str, str]:
    """Files of an image in a layout, over all its layers (later layers win; no whiteouts)."""
    out: dict[str, str] = {}
    for descriptor in manifest["layers"]:
        algorithm, hex_digest = str(descriptor["digest"]).split(":", 1)
        out.update(layer_file_digests(root / "blobs" / algorithm / hex_digest))
    return out
