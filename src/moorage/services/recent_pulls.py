"""Pull permissions remembered for a few seconds: the fast path of the access seam for callers
without a bearer token (anonymous pulls of public repositories, Basic credentials).

Asking the authorizer reads the namespace, repository, account, teams and grants (one
query, answered in a worker thread); a client pulling an image asks the same question dozens
of times a second. Only a *yes* to *pull* is remembered, for at most ``ttl_s`` seconds:

* a revoked read grant, a repository made private or a disabled account (for an anonymous or
  Basic caller) takes effect within ``ttl_s`` on every worker (each process keeps its own
  answers; nothing is shared);
* push, delete and admin are asked of the database on every request, as is every refusal, so
  a new grant takes effect at once;
* a disabled namespace is refused at once anyway: resolving the repository reads it on every
  request.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from moorage.domain.access import REPOSITORY, Action, Principal
from moorage.services.expiring import ExpiringEntries

_Key = tuple[Principal, str]


class RecentPulls:
    """Who may pull which repository, as answered in the last ``ttl_s`` seconds; at most
    ``size`` answers (the oldest goes first). ``ttl_s`` 0 remembers nothing."""

    def __init__(
        self, ttl_s: float, size: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._allowed: ExpiringEntries[_Key, bool] = ExpiringEntries(size)

    def allowed(self, principal: Principal, scope_type: str, name: str, action: str) -> bool:
        """True if ``principal`` was allowed to pull repository ``name`` within ``ttl_s``
        and ``action`` is pull; False means: ask the authorizer."""
        if action != Action.PULL.value or scope_type != REPOSITORY:
            return False
        return self._allowed.get((principal, name), self._clock()) is not None

    def remember(
        self, principal: Principal, scope_type: str, name: str, permitted: frozenset[str]
    ) -> None:
        """Record the authorizer's answer (only a pull that it allowed is kept)."""
        if self.ttl_s <= 0 or scope_type != REPOSITORY:
            return
        if Action.PULL.value not in permitted and Action.ALL.value not in permitted:
            return
        self._allowed.put((principal, name), self._clock() + self.ttl_s, True)
