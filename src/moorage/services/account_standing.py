"""Whether a caller's account still stands, as checked in the last few seconds.

A bearer token and a remembered password login both name an account without reading it. The
access seam asks this cache before honouring either, so a user disabled (or a robot deleted,
or its namespace disabled) stops being served within ``ttl_s`` on every worker, instead of
when its token expires (``auth.token_lifetime_s``) or its login leaves the login cache
(``auth.login_cache_s``). Only accounts found in good standing are remembered; a refusal is
asked again on the next request. Each process keeps its own answers; nothing is shared.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from moorage.domain.access import Principal
from moorage.services.auth_contracts import PrincipalDirectory
from moorage.services.expiring import ExpiringEntries


class AccountStanding:
    """The directory's ``current`` answers, each trusted for ``ttl_s`` seconds; at most
    ``size`` of them (the oldest goes first). ``ttl_s`` 0 asks the directory every time."""

    def __init__(
        self,
        directory: PrincipalDirectory,
        ttl_s: float,
        size: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.directory = directory
        self.ttl_s = ttl_s
        self._clock = clock
        self._checked: ExpiringEntries[Principal, Principal] = ExpiringEntries(size)

    def recent(self, principal: Principal) -> Principal | None:
        """The account as it stood at a check within ``ttl_s``, or None: call ``check``.
        A lookup and a clock read: safe on the event loop."""
        if principal.is_anonymous:
            return principal
        return self._checked.get(principal, self._clock())

    def check(self, principal: Principal) -> Principal | None:
        """The account as it stands now (reads the database), or None when it was disabled
        or deleted: its token or remembered login then counts for nothing."""
        current = self.directory.current(principal)
        if current is not None and self.ttl_s > 0:
            self._checked.put(principal, self._clock() + self.ttl_s, current)
        return current
