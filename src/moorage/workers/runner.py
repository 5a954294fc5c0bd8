"""Runs a job once or every ``interval`` seconds until stopped (SIGTERM/SIGINT)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import TypeVar

from moorage.observability import get_logger

log = get_logger(__name__)
T = TypeVar("T")


def run_job(
    name: str,
    job: Callable[[], T],
    *,
    interval: float | None,
    report: Callable[[T], None],
    stop: threading.Event | None = None,
) -> None:
    """``interval`` None: one pass. Otherwise passes until ``stop`` is set or a signal
    arrives; a failing pass is logged and retried at the next interval."""
    stop = stop or threading.Event()
    if interval is not None and threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
    while True:
        try:
            report(job())
        except Exception:
            if interval is None:
                raise
            log.exception("background job failed", job=name)
        if interval is None or stop.wait(interval):
            return
