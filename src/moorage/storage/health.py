"""Health probe for local-disk storage: the root must exist and accept a new file."""

from __future__ import annotations

import tempfile
from pathlib import Path


def prepare_local_root(root: Path) -> None:
    """Create the storage root (and parents) if missing."""
    root.mkdir(parents=True, exist_ok=True)


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
