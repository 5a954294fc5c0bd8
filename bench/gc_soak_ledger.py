"""The GC soak's client-side ledger: what every tag should point to, and when it changed.

Each tag has exactly one writer (the client that owns it), so its history is a sequence of
events, each with the interval its request ran in. An event is registered *before* its request
is sent (its end open) and closed when the answer is in: a reader that checks its pull after
the fact therefore sees every change that could have overlapped it. Readers are race-aware:
a pull may observe the state settled before it started or any state set by an event that
overlapped it; content is *live* during an interval when some tag settled on it before the
interval and no event on that tag overlapped the interval.
"""

from __future__ import annotations

import hashlib
import math
import threading
from dataclasses import dataclass, field

TagKey = tuple[str, str]  # (repository, tag)


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Image:
    repository: str
    manifest: bytes
    media_type: str
    blobs: tuple[str, ...]  # config first, then the layers

    @property
    def digest(self) -> str:
        return sha256_digest(self.manifest)


@dataclass
class TagEvent:
    """``digest`` None: the tag ends. ``end`` is infinite while the request runs."""

    start: float
    digest: str | None
    end: float = math.inf


@dataclass
class Ledger:
    blobs: dict[str, bytes] = field(default_factory=dict)
    images: dict[tuple[str, str], Image] = field(default_factory=dict)  # (repo, digest)
    tags: dict[TagKey, list[TagEvent]] = field(default_factory=dict)
    deleted: dict[tuple[str, str], float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add_blob(self, data: bytes) -> str:
        digest = sha256_digest(data)
        with self.lock:
            self.blobs[digest] = data
        return digest

    def add_image(self, image: Image) -> None:
        with self.lock:
            self.images[(image.repository, image.digest)] = image

    def image(self, repository: str, digest: str) -> Image | None:
        with self.lock:
            return self.images.get((repository, digest))

    def begin(self, key: TagKey, start: float, digest: str | None) -> TagEvent:
        event = TagEvent(start, digest)
        with self.lock:
            self.tags.setdefault(key, []).append(event)
        return event

    def finish(self, event: TagEvent, end: float, digest: str | None) -> None:
        """Close ``event`` with the state the tag really ended up in."""
        with self.lock:
            event.digest = digest
            event.end = end

    def current(self, key: TagKey) -> str | None:
        """The owner's view: the state its last (finished) event left."""
        with self.lock:
            events = self.tags.get(key, [])
            return events[-1].digest if events else None

    def allowed(self, key: TagKey, start: float, end: float) -> set[str | None]:
        """Every state a pull of ``key`` running in [start, end] may observe."""
        with self.lock:
            return _allowed(self.tags.get(key, []), start, end)

    def live(self, repository: str, digest: str, start: float, end: float) -> bool:
        """True when some tag of ``repository`` held ``digest`` throughout [start, end]."""
        with self.lock:
            for (repo, _), events in self.tags.items():
                if repo == repository and _held_throughout(events, digest, start, end):
                    return True
        return False

    def settled_tags(self) -> dict[TagKey, str]:
        """Every tag's final state (call once all clients stopped): the tagged ones."""
        with self.lock:
            return {
                key: events[-1].digest
                for key, events in self.tags.items()
                if events and events[-1].digest is not None
            }

    def mark_deleted(self, repository: str, digest: str, start: float) -> None:
        """A DELETE of the manifest by digest started at ``start``."""
        with self.lock:
            self.deleted.setdefault((repository, digest), start)

    def deleted_since(self, repository: str, digest: str) -> float:
        """When a DELETE of the manifest by digest started (infinity: never)."""
        with self.lock:
            return self.deleted.get((repository, digest), math.inf)


def _settled_before(events: list[TagEvent], start: float) -> str | None:
    state: str | None = None
    for event in events:
        if event.end <= start:
            state = event.digest
    return state


def _allowed(events: list[TagEvent], start: float, end: float) -> set[str | None]:
    allowed = {_settled_before(events, start)}
    allowed.update(event.digest for event in events if event.start <= end and event.end > start)
    return allowed


def _held_throughout(events: list[TagEvent], digest: str, start: float, end: float) -> bool:
    if _settled_before(events, start) != digest:
        return False
    return not any(event.start <= end and event.end > start for event in events)
