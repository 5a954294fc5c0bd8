"""Flatten a stack of layer tars (base first) into the one tar of the final file tree.

Two streaming passes over the layers, so memory grows with the number of paths, never with
the bytes: the first reads only headers and replays the stack on a tree of paths (the
``Plan``), the second reads them again and copies exactly the members the plan keeps.

The rules (OCI image-spec "Applying changesets"):

- A later layer's entry replaces an earlier one at the same path; a non-directory
  replaces a directory together with everything under it. A directory over a directory
  keeps what is below it (its own metadata wins).
- ``.wh.<name>`` removes ``<name>`` (and what is under it) of the layers below;
  ``.wh..wh..opq`` hides everything the layers below put in its directory. Both apply to
  lower layers only: what the same layer adds stays, whatever the order in the tar.
- A hard link shares its target's file (inode) as the target was when the link's layer was
  applied. A target replaced or removed later leaves the link with that content: the
  output has the content once under one of the file's surviving names, the other names
  are hard links to it. A link whose target does not exist (or is a directory) is dropped.
- An entry under a path that is not a directory turns that path into a directory (the
  non-directory goes), as extracting into it would have to.
- Paths are normalized (no leading ``/`` or ``./``); an entry with a ``..`` component, or
  naming the root itself, is skipped. Other ``.wh..wh.`` names (aufs metadata) are dropped.
"""

from __future__ import annotations

import posixpath
import tarfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import IO

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
AUFS_META = ".wh..wh."
COPY_BUFFER = 1 << 20
# Extended headers worth keeping: extended attributes and ACLs (file capabilities live
# there). Path, size, owner and time headers are rewritten from the member's own fields.
KEPT_PAX_PREFIXES = ("SCHILY.xattr.", "LIBARCHIVE.xattr.", "SCHILY.acl.")

LayerOpener = Callable[[], AbstractContextManager[IO[bytes]]]
"""Opens a layer as an uncompressed tar stream, afresh on every call (each pass reads it)."""

MemberKey = tuple[int, int]  # (layer index, member index within the layer's tar)


class LayerFormatError(ValueError):
    """A layer is not a readable tar."""


@dataclass(slots=True)
class _Node:
    version: _Version | None = None  # None: a directory implied by what is below it
    children: dict[str, _Node] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Version:
    key: MemberKey
    is_dir: bool
    inode: MemberKey | None  # the member that made the file; None for directories


@dataclass(frozen=True, slots=True)
class Emission:
    """One output entry made from a kept member: its path, and the name it hard-links to
    (None: the member itself, with its content)."""

    path: str
    link_to: str | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    """What the second pass writes: for each kept member, the entries made from it."""

    emissions: dict[MemberKey, tuple[Emission, ...]]

    @property
    def paths(self) -> frozenset[str]:
        return frozenset(e.path for entries in self.emissions.values() for e in entries)


def normalize(name: str) -> str | None:
    """The member name as a relative path; None for the root or a path leaving it."""
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if not parts or ".." in parts:
        return None
    return "/".join(parts)


def _members(stream: IO[bytes]) -> Iterator[tuple[tarfile.TarFile, tarfile.TarInfo]]:
    try:
        with tarfile.open(fileobj=stream, mode="r|", bufsize=COPY_BUFFER) as archive:
            for member in archive:
                yield archive, member
    except (tarfile.TarError, EOFError) as exc:
        raise LayerFormatError(f"not a readable tar: {exc}") from None


class _Tree:
    def __init__(self) -> None:
        self.root = _Node()

    def find(self, path: str) -> _Node | None:
        node = self.root
        for part in path.split("/"):
            found = node.children.get(part)
            if found is None:
                return None
            node = found
        return node

    def parent_for(self, path: str) -> tuple[_Node, str]:
        """The node of ``path``'s directory (made a directory where it is not) and the name."""
        *dirs, name = path.split("/")
        node = self.root
        for part in dirs:
            child = node.children.get(part)
            if child is None:
                child = node.children[part] = _Node()
            elif child.version is not None and not child.version.is_dir:
                child.version, child.children = None, {}
            node = child
        return node, name

    def place(self, path: str, version: _Version) -> None:
        parent, name = self.parent_for(path)
        node = parent.children.get(name)
        if node is None:
            parent.children[name] = _Node(version)
            return
        if not version.is_dir:
            node.children = {}
        node.version = version

    def hide_lower(self, node: _Node, layer: int) -> bool:
        """Drops everything under ``node`` that a layer below ``layer`` put there; True when
        ``node`` itself holds nothing of ``layer`` any more (its caller may drop it)."""
        for name, child in list(node.children.items()):
            if self.hide_lower(child, layer):
                del node.children[name]
        if node.version is not None and node.version.key[0] < layer:
            if not node.children:
                return True
            node.version = None  # kept only as the directory of this layer's entries
        return node.version is None and not node.children

    def whiteout(self, path: str, layer: int) -> None:
        *dirs, name = path.split("/")
        parent = self.find("/".join(dirs)) if dirs else self.root
        if parent is None or name not in parent.children:
            return
        if self.hide_lower(parent.children[name], layer):
            del parent.children[name]

    def opaque(self, path: str | None, layer: int) -> None:
        node = self.root if path is None else self.find(path)
        if node is None:
            return
        for name, child in list(node.children.items()):
            if self.hide_lower(child, layer):
                del node.children[name]

    def walk(self) -> Iterator[tuple[str, _Version]]:
        stack: list[tuple[str, _Node]] = [("", self.root)]
        while stack:
            prefix, node = stack.pop()
            for name, child in node.children.items():
                path = f"{prefix}{name}"
                if child.version is not None:
                    yield path, child.version
                stack.append((path + "/", child))


def plan(layers: list[LayerOpener]) -> Plan:
    """The first pass: replay every layer's headers on a tree of paths."""
    tree = _Tree()
    for index, opener in enumerate(layers):
        whiteouts: list[str] = []
        opaques: list[str | None] = []
        with opener() as stream:
            for position, (_archive, member) in enumerate(_members(stream)):
                path = normalize(member.name)
                if path is None:
                    continue
                directory, base = posixpath.split(path)
                if base == OPAQUE:
                    opaques.append(directory or None)
                    continue
                if base.startswith(AUFS_META):
                    continue
                if base.startswith(WHITEOUT):
                    whiteouts.append(posixpath.join(directory, base[len(WHITEOUT) :]))
                    continue
                key = (index, position)
                if member.islnk():
                    target_path = normalize(member.linkname)
                    target = None if target_path is None else tree.find(target_path)
                    if target is None or target.version is None or target.version.is_dir:
                        continue  # dangling: nothing to link to
                    tree.place(path, _Version(key, False, target.version.inode))
                elif member.isdir():
                    tree.place(path, _Version(key, True, None))
                else:
                    tree.place(path, _Version(key, False, key))
        # After the layer: its whiteouts hide only what the layers below put there.
        for hidden in whiteouts:
            if hidden:
                tree.whiteout(hidden, index)
        for directory_path in opaques:
            tree.opaque(directory_path, index)
    return _emissions(tree)


def _emissions(tree: _Tree) -> Plan:
    """Directories from their own member; each file once, from the member that made it,
    under its own path when that survives (else its first name), the rest as hard links."""
    names: dict[MemberKey, list[tuple[str, MemberKey]]] = {}
    out: dict[MemberKey, list[Emission]] = {}
    for path, version in tree.walk():
        if version.inode is None:
            out.setdefault(version.key, []).append(Emission(path))
        else:
            names.setdefault(version.inode, []).append((path, version.key))
    for inode, paths in names.items():
        own = [path for path, key in paths if key == inode]
        first = own[0] if own else min(path for path, _ in paths)
        entries = [Emission(first)]
        entries += [Emission(path, first) for path, _ in sorted(paths) if path != first]
        out.setdefault(inode, []).extend(entries)
    return Plan({key: tuple(entries) for key, entries in out.items()})


def _header(member: tarfile.TarInfo, path: str, link_to: str | None) -> tarfile.TarInfo:
    info = tarfile.TarInfo(path)
    info.mode, info.uid, info.gid = member.mode, member.uid, member.gid
    info.uname, info.gname, info.mtime = member.uname, member.gname, member.mtime
    info.pax_headers = {
        key: value for key, value in member.pax_headers.items() if key.startswith(KEPT_PAX_PREFIXES)
    }
    if link_to is not None:
        info.type, info.linkname, info.size = tarfile.LNKTYPE, link_to, 0
    elif member.isreg():
        info.type, info.size = tarfile.REGTYPE, member.size
    else:
        info.type, info.linkname = member.type, member.linkname
        info.devmajor, info.devminor = member.devmajor, member.devminor
    return info


def write_flattened(layers: list[LayerOpener], layout: Plan, out: IO[bytes]) -> None:
    """The second pass: copy the planned members, base layer first, into ``out``."""
    with tarfile.open(
        fileobj=out, mode="w|", format=tarfile.PAX_FORMAT, bufsize=COPY_BUFFER
    ) as flat:
        for index, opener in enumerate(layers):
            with opener() as stream:
                for position, (archive, member) in enumerate(_members(stream)):
                    entries = layout.emissions.get((index, position))
                    if not entries:
                        continue
                    for entry in entries:
                        info = _header(member, entry.path, entry.link_to)
                        if info.type == tarfile.REGTYPE:
                            flat.addfile(info, archive.extractfile(member))
                        else:
                            flat.addfile(info)


def flatten(layers: list[LayerOpener], out: IO[bytes]) -> Plan:
    """Both passes: the flattened tar of ``layers`` (base first) written to ``out``."""
    layout = plan(layers)
    write_flattened(layers, layout, out)
    return layout
