"""The cache behind the auth fast paths (verified tokens, remembered logins, recent pulls,
account standing): a value lives until its deadline, the oldest goes first when full."""

from __future__ import annotations

import threading

from moorage.services.expiring import ExpiringEntries


def test_a_value_lives_until_its_deadline() -> None:
    entries: ExpiringEntries[str, int] = ExpiringEntries(4)
    entries.put("a", 10.0, 1)
    assert entries.get("a", 9.99) == 1
    assert entries.get("a", 10.0) is None  # the deadline itself is past
    assert entries.get("a", 5.0) is None  # and an expired entry is gone, not hidden


def test_the_oldest_goes_first_and_size_zero_keeps_nothing() -> None:
    entries: ExpiringEntries[str, int] = ExpiringEntries(2)
    for index, key in enumerate("abc"):
        entries.put(key, 100.0, index)
    assert [entries.get(key, 0.0) for key in "abc"] == [None, 1, 2]
    nothing: ExpiringEntries[str, int] = ExpiringEntries(0)
    nothing.put("a", 100.0, 1)
    assert nothing.get("a", 0.0) is None


def test_threads_adding_at_once_keep_the_bound() -> None:
    entries: ExpiringEntries[int, int] = ExpiringEntries(50)

    def add(offset: int) -> None:
        for key in range(offset, offset + 2_000):
            entries.put(key, 1e9, key)

    threads = [threading.Thread(target=add, args=(n * 10_000,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    kept = [key for n in range(4) for key in range(n * 10_000, n * 10_000 + 2_000)]
    assert sum(entries.get(key, 0.0) is not None for key in kept) <= 50
