"""Local-disk storage roots: made ready at start, and probed by health checks (the root must
exist and accept a new file)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from moorage.storage import files, keys


def prepare_local_root(root: Path) -> None:
    """Create the storage root (and parents) if missing, and the fan-out directories of
    SHA-256 blobs. Made on first use, each would cost one early push a mkdir and an fsync of
    its parent; made here, all 256 cost one fsync, once. (Deletes may prune an emptied one
    again: the driver then remakes it on demand.)"""
    root.mkdir(parents=True, exist_ok=True)
    fanout = [root / prefix for prefix in keys.blob_fanout_prefixes("sha256")]
    if fanout[-1].is_dir():  # made on an earlier start
        return
    parent = fanout[0].parent
    files.makedirs_synced(parent, root)
    for directory in fanout:
        directory.mkdir(exist_ok=True)
    files.fsync_dir(parent)


def check_local_root(root: Path) -> None:
    """Raise ``OSError`` unless a file can be created and removed under ``root``.

    Writing is the honest test: a directory can exist and still refuse writes (read-only mount,
    full disk, wrong owner).
    """
    if not root.is_dir():
        raise NotADirectoryError(f"storage root {root} is not a directory")
    with tempfile.NamedTemporaryFile(dir=root, prefix=".health-", delete=True) as probe:
        probe.write(b"ok")
        probe.flush()
