"""Keeping server processes small: stop libraries importing optional packages they won't use.

Several dependencies import an optional package whenever it is installed (structlog imports rich
for tracebacks Moorage never renders, granian's supervisor imports uvloop it never runs), and each
costs a few MB of RSS in every process of the server. ``hidden_modules`` makes those imports fail
the way a missing package does, so the library takes its documented fallback.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def hidden_modules(*names: str) -> Iterator[None]:
    """Within the block ``import name`` raises ImportError for each of ``names`` not already
    imported (a None entry in ``sys.modules`` does that); afterwards they import normally."""
    hidden = [name for name in names if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        for name in hidden:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]
