"""Write a file's bytes to disk while it is still being received.

A blob is fsync'd before it is recorded. Left to itself the kernel keeps a large upload in the
page cache and writes it back only at that final fsync, so the client waits for the network
transfer and then for the whole disk write, one after the other. Starting the write-back of
each completed window at once (``sync_file_range``, Linux) overlaps the two: the final fsync
finds only the last few windows dirty, and the push runs at the slower of network and disk
instead of their sum. Waiting for the window ``LAG`` places back keeps the dirty data bounded.

Elsewhere (no ``sync_file_range``) this does nothing and the final fsync does all the work.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import Final

WINDOW: Final = 8 << 20  # bytes handed to the disk at a time
LAG: Final = 4  # windows allowed in flight before the writer waits for the oldest
_WAIT_BEFORE, _WRITE, _WAIT_AFTER = 1, 2, 4

_SyncFileRange = Callable[[int, int, int, int], int]


def _load() -> _SyncFileRange | None:
    try:
        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


_sync_file_range = _load()


class Writeback:
    """Follows one sequential write to ``fd`` from byte ``start``; call ``wrote`` after each
    write. Failures only switch it off: the final fsync still makes the file durable."""

    def __init__(self, fd: int, start: int = 0) -> None:
        self.fd = fd
        self.position = start
        self.next_window = start - start % WINDOW + WINDOW  # first boundary to cross
        self.enabled = _sync_file_range is not None

    def wrote(self, count: int) -> None:
        self.position += count
        while self.enabled and self.position >= self.next_window:
            window_start = self.next_window - WINDOW
            self._call(window_start, _WRITE)  # start this window's write-back, do not wait
            if window_start >= LAG * WINDOW:  # ...and let at most LAG windows be in flight
                self._call(window_start - LAG * WINDOW, _WAIT_BEFORE | _WRITE | _WAIT_AFTER)
            self.next_window += WINDOW

    def _call(self, offset: int, flags: int) -> None:
        assert _sync_file_range is not None
        if _sync_file_range(self.fd, offset, WINDOW, flags) != 0:
            self.enabled = False  # e.g. a filesystem that refuses it: rely on the fsync
