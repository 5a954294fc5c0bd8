"""Bounded parsers for the integers clients put in headers and query strings.

Every number is ASCII digits only (``str.isdigit`` and ``int`` also take superscripts and
Arabic-Indic digits), and at most ``MAX_INT`` (2**63 - 1, what the database and storage can
hold): a value past it is refused before ``int`` sees it, so Python's 4,300-digit conversion
limit is never hit.
"""

from __future__ import annotations

import re
from typing import Final

from moorage.domain.echo import echo
from moorage.domain.errors import PaginationInvalidError, SizeInvalidError

MAX_INT: Final = 2**63 - 1
_MAX_DIGITS: Final = len(str(MAX_INT))  # 19
_DIGITS = re.compile(r"[0-9]+")
_CONTENT_RANGE = re.compile(r"(?:bytes[ =])?([0-9]+)-([0-9]+)(?:/(?:[0-9]+|\*))?")
_BYTE_RANGE = re.compile(r"bytes=([0-9]*)-([0-9]*)")
# A value past MAX_INT in a ``Range``: larger than any blob, so it means "to the end".
_BEYOND: Final = MAX_INT + 1


def parse_uint(text: str, *, limit: int = MAX_INT) -> int | None:
    """``text`` as a non-negative integer of at most ``limit``; None when it is anything else
    (signs, spaces inside, non-ASCII digits, too large)."""
    if not _DIGITS.fullmatch(text):
        return None
    significant = text.lstrip("0")
    if len(significant) > _MAX_DIGITS:
        return None
    value = int(significant or "0")
    return value if value <= limit else None


def _saturating(text: str) -> int:
    """ASCII digits (already matched) as an int, ``_BEYOND`` when past ``MAX_INT``."""
    value = parse_uint(text)
    return _BEYOND if value is None else value


def parse_count(text: str | None, *, limit: int) -> int | None:
    """The ``n`` of a listing: absent or empty gives None; a larger value than ``limit`` is
    capped to it; anything but a 64-bit non-negative integer is PAGINATION_NUMBER_INVALID."""
    if text is None or text == "":
        return None
    value = parse_uint(text)
    if value is None:
        raise PaginationInvalidError(f"n must be a non-negative integer, not {echo(text)}")
    return min(value, limit)


def parse_content_length(text: str | None) -> int | None:
    """``Content-Length``: None when absent; SIZE_INVALID when it is not a number."""
    if text is None:
        return None
    value = parse_uint(text.strip(" \t"))
    if value is None:
        raise SizeInvalidError(f"Content-Length must be a non-negative integer, not {echo(text)}")
    return value


def parse_content_range(header: str) -> tuple[int, int] | None:
    """An upload chunk's ``<start>-<end>`` (inclusive; ``bytes``/``/total`` tolerated); None
    when malformed, inverted or past 64 bits."""
    match = _CONTENT_RANGE.fullmatch(header.strip())
    if match is None:
        return None
    start, end = parse_uint(match.group(1)), parse_uint(match.group(2))
    if start is None or end is None or end < start:
        return None
    return start, end


def parse_byte_range(header: str | None, size: int) -> tuple[int, int] | bool | None:
    """A blob GET's ``Range``: (start, end) inclusive for one satisfiable range; None to send
    the whole blob (no or unusable header, e.g. several ranges); False when unsatisfiable
    (416). Numbers past 64 bits are simply larger than the blob."""
    if not header:
        return None
    match = _BYTE_RANGE.fullmatch(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if first == "" and last == "":
        return None
    if first == "":  # the final `last` bytes
        length = _saturating(last)
        if length == 0 or size == 0:
            return False
        return max(size - length, 0), size - 1
    start = _saturating(first)
    end = size - 1 if last == "" else min(_saturating(last), size - 1)
    if start >= size or end < start:
        return False
    return start, end
