"""The GC job: ``moorage gc`` (one cycle), ``moorage worker gc`` (a loop) and the loop every
``moorage serve`` worker runs in a thread (``gc.enabled``). Any number of them at once is
safe (docs/gc.md); each cycle starts at a random offset so that workers spread out."""

from __future__ import annotations

import random
import threading

from moorage.observability import get_logger
from moorage.services.gc import GarbageCollector, GcReport, Progress

log = get_logger(__name__)


class GcJob:
    """Built by ``app.build``; the CLI and the server only run it."""

    name = "gc"

    def __init__(self, collector: GarbageCollector, interval_s: float) -> None:
        self.collector, self.interval_s = collector, interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self, *, dry_run: bool = False, progress: Progress | None = None) -> GcReport:
        return self.collector.run_once(dry_run=dry_run, progress=progress)

    def preview(self) -> GcReport:
        """What the next cycle would free (a dry run)."""
        return self.collector.preview()

    def start_background(self) -> None:
        """Cycles every ``interval_s`` in a daemon thread until ``stop`` (a server worker)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="moorage-gc", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        # A random first wait: workers started together do not collect in lockstep.
        wait = random.uniform(0, self.interval_s)  # noqa: S311 (not a secret)
        while not self._stop.wait(wait):
            try:
                self.collector.run_once()
            except Exception:
                log.exception("garbage collection cycle failed")  # the next one retries
            wait = self.interval_s
