"""BackgroundFeed: chunks fed in order on one helper thread; failures reach the caller."""

from __future__ import annotations

import threading

import pytest

from moorage.hashing.background import BackgroundFeed


def _helpers() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "upload-hashing"]


def test_chunks_are_fed_in_order_and_close_waits_for_the_last() -> None:
    seen: list[bytes] = []
    feed = BackgroundFeed(seen.append)
    chunks = [bytes([n]) * 1000 for n in range(50)]
    for chunk in chunks:
        feed.put(chunk)
    feed.close()
    assert seen == chunks
    assert _helpers() == []


def test_a_feed_failure_is_raised_by_close() -> None:
    def fail(chunk: bytes) -> None:
        raise ValueError(f"bad chunk of {len(chunk)} bytes")

    feed = BackgroundFeed(fail)
    feed.put(b"x" * 10)
    with pytest.raises(ValueError, match="bad chunk of 10 bytes"):
        feed.close()
    assert _helpers() == []


def test_a_feed_failure_stops_later_puts() -> None:
    failed = threading.Event()

    def fail(_chunk: bytes) -> None:
        failed.set()
        raise OSError("libcrypto refused")

    feed = BackgroundFeed(fail)
    feed.put(b"first")
    assert failed.wait(5)
    feed.abandon()  # the helper has stopped; the failure is kept...
    with pytest.raises(OSError, match="libcrypto refused"):
        feed.put(b"second")  # ...and refuses more work


def test_abandon_stops_the_helper_without_raising() -> None:
    feed = BackgroundFeed(lambda _chunk: None)
    feed.put(b"data")
    feed.abandon()
    feed.abandon()  # idempotent
    assert _helpers() == []
