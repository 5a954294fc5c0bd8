"""What the HTTP layer is handed by the composition root, reachable from every request."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from starlette.requests import Request

from moorage.http.health import HealthCheck
from moorage.observability import Metrics
from moorage.services.registry import RegistryServices


@dataclass(frozen=True, slots=True)
class HttpContext:
    """Dependencies of the endpoints."""

    metrics: Metrics
    health_checks: Sequence[HealthCheck] = field(default_factory=tuple)
    read_only: bool = False
    health_timeout_s: float = 5.0
    on_shutdown: Sequence[Callable[[], None]] = field(default_factory=tuple)
    registry: RegistryServices | None = None
    # Run metadata reads on the event loop (the embedded SQLite database: no network waits).
    inline_reads: bool = False


def get_context(request: Request) -> HttpContext:
    context: HttpContext = request.app.state.context
    return context
