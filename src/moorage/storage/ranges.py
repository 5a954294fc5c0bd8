"""Byte-range arguments of ``read``: checked once, clamped the same way by every driver."""

from __future__ import annotations


def check_read_args(offset: int, length: int | None, chunk_size: int) -> None:
    if offset < 0:
        raise ValueError(f"read offset must be >= 0, got {offset}")
    if length is not None and length < 0:
        raise ValueError(f"read length must be >= 0, got {length}")
    if chunk_size <= 0:
        raise ValueError(f"read chunk_size must be > 0, got {chunk_size}")


def clamp(size: int, offset: int, length: int | None) -> tuple[int, int]:
    """``(start, end)`` of the requested range within an object of ``size`` bytes."""
    start = min(offset, size)
    end = size if length is None else min(size, start + length)
    return start, end
