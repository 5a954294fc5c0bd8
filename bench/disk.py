"""The durable disk write rate: 1 GiB written and fsync'd in the bench's temporary folder."""

from __future__ import annotations

import os
import time
from pathlib import Path

from bench.data import MIB, BlobSpec
from bench.model import Measure, size_label

MACHINE = "machine"


def durable_write(directory: Path, size: int) -> list[Measure]:
    """Write ``size`` bytes (4 MiB writes) then fsync; MB/s over the whole, fsync included."""
    path = directory / "disk-probe.bin"
    blob = BlobSpec("disk-probe", size)
    pieces = list(blob.chunks()) if size <= 64 * MIB else None
    os.sync()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        start = time.perf_counter()
        for piece in pieces if pieces is not None else blob.chunks():
            os.write(fd, piece)
        os.fsync(fd)
        seconds = time.perf_counter() - start
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
    rate = size / 1e6 / seconds
    return [
        Measure("disk", f"durable disk write, {size_label(size)} + fsync", "MB/s", MACHINE, rate)
    ]
