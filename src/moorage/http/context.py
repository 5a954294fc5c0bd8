"""What the HTTP layer is handed by the composition root, reachable from every request."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio
from starlette.requests import Request

from moorage.http.health import HealthCheck
from moorage.observability import Metrics
from moorage.services.logins import AuthServices
from moorage.services.permissions import PermissionService
from moorage.services.recent_pulls import RecentPulls
from moorage.services.registry import AdminServices, RegistryServices

if TYPE_CHECKING:
    from moorage.services.squash.service import SquashService
    from moorage.services.storage_usage import StorageUsage


class ThreadPool:
    """A capacity limit on worker threads, made on first use (anyio builds limiters for the
    running event loop, and the context is built before there is one)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._limiter: anyio.CapacityLimiter | None = None

    def limiter(self) -> anyio.CapacityLimiter:
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.size)
        return self._limiter


@dataclass(frozen=True, slots=True)
class HttpContext:
    """Dependencies of the endpoints."""

    metrics: Metrics
    health_checks: Sequence[HealthCheck] = field(default_factory=tuple)
    read_only: bool = False
    health_timeout_s: float = 5.0
    on_shutdown: Sequence[Callable[[], None]] = field(default_factory=tuple)
    registry: RegistryServices | None = None
    admin: AdminServices | None = None  # the REST API's services
    # Run metadata reads on the event loop (the embedded SQLite database: no network waits).
    inline_reads: bool = False
    # A request body that sends nothing for this long is dropped (the session stays intact).
    body_idle_timeout_s: float = 60.0
    # Threads for writes that stream a request body, apart from the default pool.
    upload_threads: ThreadPool = field(default_factory=lambda: ThreadPool(64))
    # The token service, login checks and realm (None: no token endpoint, every route open).
    auth: AuthServices | None = None
    # Answers for Basic and anonymous callers what each scope allows (bearer tokens carry it).
    authorizer: PermissionService | None = None
    # Its yeses to pulls remembered for a few seconds (the seam's fast path; None: always ask).
    recent_pulls: RecentPulls | None = None
    # Squashed images (None: derived_images.enabled is off), the threads that build them
    # and how long a request waits for another's build of the same image.
    squash: SquashService | None = None
    squash_threads: ThreadPool = field(default_factory=lambda: ThreadPool(2))
    squash_wait_s: float = 60.0
    # Storage accounting for GET /healthz/storage (None: the route answers 404).
    storage_usage: StorageUsage | None = None


def get_context(request: Request) -> HttpContext:
    context: HttpContext = request.app.state.context
    return context
