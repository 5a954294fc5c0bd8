"""Write-back while writing: which windows go to the disk when, and that bytes stay right."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from moorage.storage import files, writeback
from moorage.storage.writeback import LAG, WINDOW, Writeback

START, WAIT = 2, 1 | 2 | 4


def _record(monkeypatch: pytest.MonkeyPatch, result: int = 0) -> list[tuple[int, int]]:
    calls: list[tuple[int, int]] = []

    def fake(fd: int, offset: int, length: int, flags: int) -> int:
        assert length == WINDOW
        calls.append((offset // WINDOW, flags))
        return result

    monkeypatch.setattr(writeback, "_sync_file_range", fake)
    return calls


def test_each_completed_window_starts_and_the_lagging_one_is_waited_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = _record(monkeypatch)
    flusher = Writeback(fd=99)
    for _ in range((LAG + 2) * 4):
        flusher.wrote(WINDOW // 4)
    starts = [window for window, flags in calls if flags == START]
    waits = [window for window, flags in calls if flags == WAIT]
    assert starts == list(range(LAG + 2))
    assert waits == [0, 1]  # at most LAG windows in flight when the writer goes on


def test_a_write_resuming_mid_file_counts_windows_from_the_file_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = _record(monkeypatch)
    flusher = Writeback(fd=99, start=WINDOW + WINDOW // 2)
    flusher.wrote(WINDOW // 2 - 1)
    assert calls == []
    flusher.wrote(1)
    assert calls == [(1, START)]


def test_a_refusing_filesystem_switches_it_off(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _record(monkeypatch, result=-1)
    flusher = Writeback(fd=99)
    flusher.wrote(3 * WINDOW)
    assert calls == [(0, START)]
    assert not flusher.enabled


def test_bytes_written_with_write_back_are_exact(tmp_path: Path) -> None:
    """The real call on a real file: appends resuming at an odd offset across windows."""
    path = tmp_path / "blob"
    head = os.urandom(WINDOW + 12345)
    tail = [os.urandom(1 << 20) for _ in range(2 * WINDOW // (1 << 20))]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        assert files.write_all(fd, [head]) == len(head)
        assert files.write_all(fd, tail, start=len(head)) == sum(map(len, tail))
        os.fsync(fd)
    finally:
        os.close(fd)
    assert path.read_bytes() == head + b"".join(tail)
