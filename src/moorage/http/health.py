"""Health checks handed in by the composition root, run by ``GET /healthz``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import anyio
import anyio.to_thread

from moorage.observability import get_logger, redact_url_passwords

log = get_logger(__name__)

DEFAULT_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """One component's probe: returns when healthy, raises any exception when not."""

    component: str
    probe: Callable[[], None]


@dataclass(frozen=True, slots=True)
class ComponentStatus:
    component: str
    healthy: bool
    error: str | None = None


async def run_check(check: HealthCheck, timeout_s: float) -> ComponentStatus:
    """Run a blocking probe off the event loop; a hung probe counts as a failure."""
    try:
        with anyio.fail_after(timeout_s):
            await anyio.to_thread.run_sync(check.probe, abandon_on_cancel=True)
    except TimeoutError:
        log.warning("health check timed out", component=check.component, timeout_s=timeout_s)
        return ComponentStatus(check.component, healthy=False, error="timed out")
    except Exception as exc:
        # Details go to the log only: /healthz is unauthenticated and must not leak hostnames.
        log.warning(
            "health check failed",
            component=check.component,
            error=redact_url_passwords(f"{type(exc).__name__}: {exc}"),
        )
        return ComponentStatus(check.component, healthy=False, error=type(exc).__name__)
    return ComponentStatus(check.component, healthy=True)


async def run_checks(
    checks: Sequence[HealthCheck], timeout_s: float = DEFAULT_TIMEOUT_S
) -> list[ComponentStatus]:
    results: list[ComponentStatus | None] = [None] * len(checks)

    async def run_one(index: int, check: HealthCheck) -> None:
        results[index] = await run_check(check, timeout_s)

    async with anyio.create_task_group() as group:
        for index, check in enumerate(checks):
            group.start_soon(run_one, index, check)
    return [result for result in results if result is not None]
