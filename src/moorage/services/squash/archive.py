"""The docker-archive around a flattened layer (what ``docker save`` writes and ``docker
load``, ``podman load`` and ``skopeo``'s ``docker-archive:`` read): the image config as
``<config sha256>.json``, the layer as ``<diff id>/layer.tar``, ``manifest.json`` naming
both (and the tag, when there is one), and ``repositories`` for the oldest loaders.

Produced as a stream of chunks (headers built by ``tarfile``), so the layer is copied
from its file piece by piece and the archive can go straight into storage. The same inputs
give the same bytes: a rebuilt archive keeps its signature valid.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any

BLOCK = tarfile.BLOCKSIZE
RECORD = tarfile.RECORDSIZE
CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class FlatLayer:
    """The flattened layer tar: an open file, its size and its sha256 (the diff id)."""

    file: IO[bytes]
    size: int
    sha256_hex: str

    @property
    def diff_id(self) -> str:
        return f"sha256:{self.sha256_hex}"


def squashed_config(config: dict[str, Any], layer: FlatLayer, comment: str) -> dict[str, Any]:
    """The image's config with one layer: ``rootfs`` names the flat layer, ``history`` is
    one entry; everything else (environment, entrypoint, command, labels, platform) stays."""
    squashed = dict(config)
    squashed["rootfs"] = {"type": "layers", "diff_ids": [layer.diff_id]}
    entry: dict[str, Any] = {"created_by": comment, "comment": comment}
    if isinstance(config.get("created"), str):
        entry["created"] = config["created"]
    squashed["history"] = [entry]
    return squashed


def created_seconds(config: dict[str, Any]) -> int:
    """The image's creation time for the archive's own members (0 when it has none)."""
    value = config.get("created")
    if not isinstance(value, str):
        return 0
    try:
        return max(int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()), 0)
    except ValueError:
        return 0


def _header(name: str, size: int, mtime: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, mtime, 0o644
    info.uname = info.gname = "root"
    return info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8")


def _padding(size: int) -> bytes:
    return b"\0" * (-size % BLOCK)


def _small(name: str, content: bytes, mtime: int) -> Iterator[bytes]:
    yield _header(name, len(content), mtime) + content + _padding(len(content))


def docker_archive(
    config: dict[str, Any], layer: FlatLayer, repo_tag: tuple[str, str] | None
) -> Iterator[bytes]:
    """The archive's bytes. ``repo_tag``: (repository name, tag) to load the image as."""
    mtime = created_seconds(config)
    config_bytes = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    layer_dir = layer.sha256_hex
    layer_name = f"{layer_dir}/layer.tar"
    entry: dict[str, Any] = {
        "Config": config_name,
        "RepoTags": [f"{repo_tag[0]}:{repo_tag[1]}"] if repo_tag else [],
        "Layers": [layer_name],
    }
    written = 0
    for piece in _members(config_name, config_bytes, layer, layer_name, mtime):
        written += len(piece)
        yield piece
    manifest = json.dumps([entry], separators=(",", ":")).encode()
    for piece in _small("manifest.json", manifest, mtime):
        written += len(piece)
        yield piece
    if repo_tag is not None:
        repositories = json.dumps({repo_tag[0]: {repo_tag[1]: layer_dir}}).encode()
        for piece in _small("repositories", repositories, mtime):
            written += len(piece)
            yield piece
    end = 2 * BLOCK
    yield b"\0" * (end + (-(written + end) % RECORD))  # as tarfile ends an archive


def _members(
    config_name: str, config_bytes: bytes, layer: FlatLayer, layer_name: str, mtime: int
) -> Iterator[bytes]:
    dir_info = tarfile.TarInfo(layer.sha256_hex)
    dir_info.type, dir_info.mode, dir_info.mtime = tarfile.DIRTYPE, 0o755, mtime
    yield dir_info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8")
    yield from _small(f"{layer.sha256_hex}/VERSION", b"1.0", mtime)
    yield _header(layer_name, layer.size, mtime)
    layer.file.seek(0)
    remaining = layer.size
    while remaining:
        chunk = layer.file.read(min(CHUNK, remaining))
        if not chunk:
            raise OSError("the flattened layer ended early")
        remaining -= len(chunk)
        yield chunk
    yield _padding(layer.size)
    yield from _small(config_name, config_bytes, mtime)
