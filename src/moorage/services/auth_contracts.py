"""The two questions the token service and the HTTP access seam ask of accounts.

Kept apart from their implementations (``services/accounts.py``, ``services/permissions.py``)
so each side depends only on the narrow protocol it uses.
"""

from __future__ import annotations

from typing import Protocol

from moorage.domain.access import Principal, ResourceScope


class Authenticator(Protocol):
    def authenticate(self, username: str, secret: str) -> Principal | None:
        """The principal whose credentials these are: a user's password or application
        token, or a robot's secret (``org+name``). None for unknown names, wrong secrets and
        disabled accounts alike (the caller must not tell them apart)."""
        ...


class Authorizer(Protocol):
    def permitted(self, principal: Principal, scope: ResourceScope) -> frozenset[str]:
        """The actions of ``scope`` that ``principal`` may perform now (possibly none):
        repository permissions of the user, its teams or the robot; public repositories
        (``pull`` for everyone, anonymous included); the namespace owner and organization
        admins (``*``); creation on push where the principal may create repositories in the
        namespace; superusers; nothing at all in a disabled namespace; ``registry:catalog:*``
        for every authenticated principal (the catalog then lists only what it may see)."""
        ...


class PrincipalDirectory(Protocol):
    def current(self, principal: Principal) -> Principal | None:
        """``principal`` as its account stands now (the superuser flag re-read), or None
        when the account was disabled or deleted since. The token service asks it each time
        a refresh token is redeemed, so a disabled account's refresh tokens stop working."""
        ...
