"""Marking the service calls that only read the database.

On the embedded SQLite database such a call takes microseconds and never waits on a lock, less
than the worker-thread hop it would otherwise need, so the HTTP layer may run it on the event
loop. The call itself declares it: nothing that may write, touch remote storage or block goes
there, whatever the route.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])
_MARK = "__moorage_pure_read__"


def pure_read(function: F) -> F:
    """Declares ``function`` a pure database read (no writes, no storage, no network)."""
    setattr(function, _MARK, True)
    return function


def is_pure_read(function: Callable[..., Any]) -> bool:
    return bool(getattr(function, _MARK, False))
