"""Layer tars made with ``tarfile`` from simple operations, a reference model of applying
them to a file system (written apart from moorage's flattener, path by path in a dict),
and a reader that turns a flattened tar into the same shape for comparison."""

from __future__ import annotations

import io
import posixpath
import tarfile
from dataclasses import dataclass, replace
from typing import Literal

Kind = Literal["file", "dir", "symlink"]


@dataclass(frozen=True)
class Op:
    """One layer entry: ``file``, ``dir``, ``symlink``, ``hardlink`` (target = a path),
    ``whiteout`` (removes ``path`` below) or ``opaque`` (hides ``path``'s lower content;
    "" for the root)."""

    op: Literal["file", "dir", "symlink", "hardlink", "whiteout", "opaque"]
    path: str
    data: bytes = b""
    mode: int = 0o644
    target: str = ""
    uid: int = 0
    gid: int = 0
    mtime: int = 1_700_000_000


@dataclass(frozen=True)
class Entry:
    """A path of the final tree: what a user would see after extracting."""

    kind: Kind
    mode: int
    uid: int
    gid: int
    mtime: int
    data: bytes = b""
    target: str = ""  # a symlink's
    inode: object = None  # equal for the names of one hard-linked file


def layer_tar(ops: list[Op], *, dot_prefix: bool = False) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for op in ops:
            directory, base = posixpath.split(op.path)
            if op.op == "whiteout":
                name = posixpath.join(directory, ".wh." + base)
            elif op.op == "opaque":
                name = posixpath.join(op.path, ".wh..wh..opq") if op.path else ".wh..wh..opq"
            else:
                name = op.path
            info = tarfile.TarInfo(("./" if dot_prefix else "") + name)
            info.mode, info.uid, info.gid, info.mtime = op.mode, op.uid, op.gid, op.mtime
            info.uname, info.gname = ("root" if op.uid == 0 else f"u{op.uid}"), "root"
            content = None
            if op.op == "file":
                info.size, content = len(op.data), io.BytesIO(op.data)
            elif op.op == "dir":
                info.type = tarfile.DIRTYPE
            elif op.op == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, op.target
            elif op.op == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, op.target
            else:
                info.size, info.mode = 0, 0o644
                content = io.BytesIO(b"")
            tar.addfile(info, content)
    return buffer.getvalue()


def _under(path: str, top: str) -> bool:
    return top == "" or path == top or path.startswith(top + "/")


def reference_flatten(layers: list[list[Op]]) -> dict[str, Entry]:
    """The final tree, by the rules of the OCI image-spec's changesets, one dict of paths."""
    fs: dict[str, Entry] = {}
    serial = 0
    for ops in layers:
        added: set[str] = set()
        hidden: list[tuple[str, bool]] = []  # (path, opaque?) applied after the layer
        for op in ops:
            if op.op in ("whiteout", "opaque"):
                hidden.append((op.path, op.op == "opaque"))
                continue
            if op.op == "hardlink":
                source = fs.get(op.target)
                if source is None or source.kind == "dir":
                    continue
                new = source
            else:
                serial += 1
                kind: Kind = "file" if op.op == "file" else op.op  # type: ignore[assignment]
                new = Entry(kind, op.mode, op.uid, op.gid, op.mtime, op.data, op.target, serial)
                if kind == "dir":
                    new = replace(new, inode=None)
            parts = op.path.split("/")
            for depth in range(1, len(parts)):
                ancestor = "/".join(parts[:depth])
                if ancestor in fs and fs[ancestor].kind != "dir":
                    del fs[ancestor]  # a directory now: entries go under it
            if new.kind != "dir":  # replaces whatever is there, a directory with its content
                for path in [p for p in fs if _under(p, op.path)]:
                    del fs[path]
                    added.discard(path)
            fs[op.path] = new
            added.add(op.path)
        for top, opaque in hidden:
            for path in list(fs):
                if path in added:
                    continue
                if (opaque and _under(path, top) and path != top) or (
                    not opaque and _under(path, top)
                ):
                    del fs[path]
    return fs


def read_flat(data: bytes) -> dict[str, Entry]:
    """The tree a flattened tar extracts to, checking it is well formed on the way: each
    path once, no whiteouts, every hard link after the name it links to."""
    tree: dict[str, Entry] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        for member in tar:
            name = member.name
            assert name not in tree, f"{name} twice"
            assert ".wh." not in name, name
            if member.islnk():
                assert member.linkname in tree, f"{name} links to {member.linkname}, not before"
                tree[name] = tree[member.linkname]
                continue
            kind: Kind = "dir" if member.isdir() else "symlink" if member.issym() else "file"
            content = b""
            if member.isreg():
                extracted = tar.extractfile(member)
                assert extracted is not None
                content = extracted.read()
            tree[name] = Entry(
                kind,
                member.mode,
                member.uid,
                member.gid,
                int(member.mtime),
                content,
                member.linkname if member.issym() else "",
                None if kind == "dir" else ("inode", name),
            )
    return tree


def comparable(tree: dict[str, Entry]) -> dict[str, tuple[object, ...]]:
    """Paths with what they hold, and hard-link groups as sets of names (inode ids differ
    between the model and the reader; which names share a file must not)."""
    groups: dict[object, set[str]] = {}
    for path, entry in tree.items():
        if entry.inode is not None:
            groups.setdefault(entry.inode, set()).add(path)
    out: dict[str, tuple[object, ...]] = {}
    for path, entry in tree.items():
        names = frozenset(groups[entry.inode]) if entry.inode is not None else frozenset()
        out[path] = (
            entry.kind,
            entry.mode,
            entry.uid,
            entry.gid,
            entry.mtime,
            entry.data,
            entry.target,
            names,
        )
    return out
