"""The ``storage verify`` job: every location (or some), a byte-rate limit, and a checkpoint.

The checkpoint is a small JSON file under ``data_dir`` (``verify-checkpoint.json``): per
location, the last digest verified (and quarantined, if it was bad) and whether the location
is done. It is written at most once a second, after every corrupt blob and when the pass ends
or stops; ``resume`` continues after it, and a pass that finishes every location removes it.
A file, not a table: it belongs to the one host running the job, needs no migration, and is
safe to delete (the next pass starts from the beginning). Dry runs neither read nor write it
unless asked to resume, and never write it.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moorage.domain.digest import is_valid_digest
from moorage.domain.errors import ConfigError
from moorage.services.verify import (
    CorruptBlob,
    LocationReport,
    StorageVerifier,
    VerifyObserver,
    VerifyPass,
)

CHECKPOINT_FILE = "verify-checkpoint.json"
_CHECKPOINT_VERSION = 1


class ByteRate:
    """A token bucket over bytes: at most ``rate`` bytes a second on average, with bursts of
    one second's worth. ``take(n)`` sleeps off any deficit, so a chunk larger than the
    bucket still passes (and the wait after it is longer)."""

    def __init__(
        self,
        rate: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("a byte rate must be positive")
        self.rate, self.clock, self.sleep = rate, clock, sleep
        self.tokens = float(rate)
        self.last = clock()
        self.sleeps = 0
        self.slept = 0.0

    def take(self, size: int) -> None:
        now = self.clock()
        self.tokens = min(float(self.rate), self.tokens + (now - self.last) * self.rate)
        self.last = now
        self.tokens -= size
        if self.tokens < 0:
            wait = -self.tokens / self.rate
            self.sleeps += 1
            self.slept += wait
            self.sleep(wait)


@dataclass(frozen=True, slots=True)
class VerifyRequest:
    locations: Sequence[str] = ()  # every configured location when empty
    dry_run: bool = False
    resume: bool = False
    rate: int | None = None  # bytes per second; None: as fast as storage reads


@dataclass(frozen=True, slots=True)
class VerifyReport:
    locations: tuple[LocationReport, ...]
    dry_run: bool
    stopped: bool  # stopped (signal) before every location was done
    rate_waits: int = 0  # how often the byte-rate limit made reads wait
    rate_wait_s: float = 0.0  # and for how long in all

    @property
    def corrupt(self) -> int:
        return sum(len(location.corrupt) for location in self.locations)

    @property
    def unreadable(self) -> int:
        return sum(len(location.unreadable) for location in self.locations)


@dataclass(slots=True)
class _Mark:
    after: str | None = None
    done: bool = False


@dataclass(slots=True)
class Checkpoint:
    """Where each location's last pass got to (see the module docstring)."""

    path: Path
    marks: dict[str, _Mark] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> Checkpoint:
        """The checkpoint saved at ``path`` (empty when there is none); anything but what
        :meth:`save` writes is a ConfigError naming the file."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls(path)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read the verify checkpoint {path}: {exc}") from None
        marks = _marks(data)
        if marks is None:
            raise ConfigError(f"malformed verify checkpoint {path}; delete it to start over")
        return cls(path, marks)

    def save(self) -> None:
        """Atomically: a crash leaves the old checkpoint or the new one."""
        data: dict[str, Any] = {
            "version": _CHECKPOINT_VERSION,
            "locations": {
                name: {"after": mark.after, "done": mark.done} for name, mark in self.marks.items()
            },
        }
        temporary = self.path.with_name(f".{self.path.name}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_text(json.dumps(data, indent=1))
            os.replace(temporary, self.path)
        except OSError as exc:
            detail = exc.strerror or exc
            raise ConfigError(f"cannot write the verify checkpoint {self.path}: {detail}") from None

    def clear(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def _marks(data: Any) -> dict[str, _Mark] | None:
    """The marks of a checkpoint document, or None if it is not one."""
    if not isinstance(data, dict) or data.get("version") != _CHECKPOINT_VERSION:
        return None
    locations = data.get("locations")
    if not isinstance(locations, dict):
        return None
    marks = {}
    for name, mark in locations.items():
        if not isinstance(mark, dict) or not isinstance(mark.get("done"), bool):
            return None
        after = mark.get("after")
        if after is not None and not (isinstance(after, str) and is_valid_digest(after)):
            return None
        marks[name] = _Mark(after, mark["done"])
    return marks


class _Recorder:
    """Forwards to the caller's observer and keeps the checkpoint current."""

    SAVE_EVERY_S = 1.0

    def __init__(self, checkpoint: Checkpoint | None, observer: VerifyObserver | None) -> None:
        self.checkpoint, self.observer = checkpoint, observer
        self.saved_at = time.monotonic()

    def location_started(self, location: str, blobs: int, size: int) -> None:
        if self.observer is not None:
            self.observer.location_started(location, blobs, size)

    def advanced(self, location: str, size: int) -> None:
        if self.observer is not None:
            self.observer.advanced(location, size)

    def blob_verified(self, location: str, digest: str, corrupt: CorruptBlob | None) -> None:
        if self.checkpoint is not None:
            self.checkpoint.marks.setdefault(location, _Mark()).after = digest
            if corrupt is not None or time.monotonic() - self.saved_at >= self.SAVE_EVERY_S:
                self.save()
        if self.observer is not None:
            self.observer.blob_verified(location, digest, corrupt)

    def save(self) -> None:
        if self.checkpoint is not None:
            self.checkpoint.save()
            self.saved_at = time.monotonic()


class VerifyJob:
    """Built by ``app.build``; the CLI only runs it."""

    def __init__(
        self,
        verifier: StorageVerifier,
        checkpoint_path: Path,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.verifier, self.checkpoint_path = verifier, checkpoint_path
        self.sleep, self.clock = sleep, clock

    def location_names(self, wanted: Sequence[str]) -> tuple[str, ...]:
        """``wanted`` checked against the configuration (all locations when empty)."""
        configured = self.verifier.locations.names
        unknown = [name for name in wanted if name not in configured]
        if unknown:
            raise ConfigError(
                f"unknown storage location {unknown[0]!r}; configured: {', '.join(configured)}"
            )
        return tuple(dict.fromkeys(wanted)) or configured

    def run(
        self,
        request: VerifyRequest,
        observer: VerifyObserver | None = None,
        stop: threading.Event | None = None,
    ) -> VerifyReport:
        names = self.location_names(request.locations)
        stop = stop or threading.Event()
        checkpoint = (
            Checkpoint.load(self.checkpoint_path)
            if request.resume
            else Checkpoint(self.checkpoint_path)
        )
        recorder = _Recorder(None if request.dry_run else checkpoint, observer)
        rate = (
            None
            if request.rate is None
            else ByteRate(request.rate, clock=self.clock, sleep=self.sleep)
        )
        reports: list[LocationReport] = []
        try:
            for name in names:
                mark = checkpoint.marks.setdefault(name, _Mark())
                if mark.done:
                    continue  # finished by the pass this one resumes
                options = VerifyPass(
                    after=mark.after,
                    dry_run=request.dry_run,
                    pace=None if rate is None else rate.take,
                    observer=recorder,
                    should_stop=stop.is_set,
                )
                report = self.verifier.verify_location(name, options)
                reports.append(report)
                if not report.complete:
                    break
                mark.done = True
            else:  # every location asked for is done: nothing of them to resume
                for name in names:
                    del checkpoint.marks[name]
        finally:
            if not request.dry_run:
                if checkpoint.marks:
                    recorder.save()
                else:
                    checkpoint.clear()
        stopped = bool(reports) and not reports[-1].complete
        waits, waited = (0, 0.0) if rate is None else (rate.sleeps, rate.slept)
        return VerifyReport(tuple(reports), request.dry_run, stopped, waits, round(waited, 3))
