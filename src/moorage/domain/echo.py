"""Client input quoted in error messages: short, so a response never reflects kilobytes."""

from __future__ import annotations

ECHO_LIMIT = 100  # characters of client input an error message may repeat


def echo(value: object, limit: int = ECHO_LIMIT) -> str:
    """``repr(value)``, cut to about ``limit`` characters with a trailing ``…``."""
    if isinstance(value, str | bytes) and len(value) > limit:
        return repr(value[:limit]) + "…"
    text = repr(value)
    return text if len(text) <= limit + 2 else text[:limit] + "…"
