"""The one small cache the auth fast paths share: values kept until a deadline each."""

from __future__ import annotations

import threading
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class ExpiringEntries(Generic[K, V]):
    """At most ``size`` values (the oldest goes first; 0 keeps none), each until its own
    deadline on the caller's clock. Reads take no lock (one dictionary lookup); writes do,
    so worker threads may add entries while the event loop reads."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: dict[K, tuple[float, V]] = {}
        self._lock = threading.Lock()

    def get(self, key: K, now: float) -> V | None:
        """The value for ``key`` if its deadline is after ``now``, else None."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if now >= entry[0]:
            with self._lock:
                self._entries.pop(key, None)
            return None
        return entry[1]

    def put(self, key: K, until: float, value: V) -> None:
        """Keep ``value`` for ``key`` until ``until``."""
        if self._size <= 0:
            return
        with self._lock:
            while len(self._entries) >= self._size:
                self._entries.pop(next(iter(self._entries)), None)
            self._entries[key] = (until, value)
