"""Feeding hashers on a helper thread while the caller writes the same bytes elsewhere.

A large upload is hashed (SHA-256, plus SHA-1 torrent pieces) and written to storage. Done one
after the other on one thread, the two add up; the hashers (libcrypto) and ``os.write`` both
run without the GIL, so on a helper thread the hashing overlaps the write instead.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Final

QUEUE_DEPTH: Final = 4  # chunks waiting for the helper; the writer blocks beyond that


class BackgroundFeed:
    """Calls ``feed(chunk)`` for each ``put`` chunk, in order, on one helper thread.

    ``close`` waits for the last chunk and re-raises what ``feed`` raised; ``abandon`` (the
    caller is failing anyway) stops the helper without raising."""

    def __init__(self, feed: Callable[[bytes], None]) -> None:
        self._feed = feed
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=QUEUE_DEPTH)
        self._error: BaseException | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="upload-hashing", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._feed(chunk)
                except BaseException as error:  # handed to the caller by put/close
                    self._error = error

    def put(self, chunk: bytes) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(chunk)

    def close(self) -> None:
        self._stop()
        if self._error is not None:
            raise self._error

    def abandon(self) -> None:
        self._stop()

    def _stop(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._thread.join()
