"""A tiny explicit implementation of the Authenticator, Authorizer and PrincipalDirectory
protocols (a dict of users and permissions) and an in-memory TokenStore: for testing the
token service and endpoint on their own."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from moorage.domain.access import Principal, ResourceScope
from moorage.model.sql.token_store import RefreshTokenRecord


@dataclass
class Accounts:
    """Users with passwords and per-repository actions; public repositories pull for all."""

    passwords: dict[str, str] = field(default_factory=dict)
    principals: dict[str, Principal] = field(default_factory=dict)
    actions: dict[tuple[str, str], frozenset[str]] = field(default_factory=dict)
    public: set[str] = field(default_factory=set)
    disabled: set[str] = field(default_factory=set)
    asked: list[tuple[Principal, ResourceScope]] = field(default_factory=list)

    def authenticate(self, username: str, secret: str) -> Principal | None:
        if username in self.disabled or self.passwords.get(username) != secret:
            return None
        return self.principals[username]

    def permitted(self, principal: Principal, scope: ResourceScope) -> frozenset[str]:
        self.asked.append((principal, scope))
        if scope.type == "registry":
            return frozenset() if principal.is_anonymous else frozenset({"*"})
        found = set(self.actions.get((principal.name, scope.name), frozenset()))
        if scope.name in self.public:
            found.add("pull")
        return frozenset(found) & scope.actions

    def current(self, principal: Principal) -> Principal | None:
        return None if principal.name in self.disabled else self.principals.get(principal.name)


@dataclass
class MemoryStore:
    secrets: dict[str, bytes] = field(default_factory=dict)
    refresh: dict[str, RefreshTokenRecord] = field(default_factory=dict)

    def secret(self, name: str, create: Callable[[], bytes]) -> bytes:
        return self.secrets.setdefault(name, create())

    def add_refresh_token(self, record: RefreshTokenRecord) -> None:
        self.refresh[record.token_hash] = record

    def find_refresh_token(self, token_hash: str) -> RefreshTokenRecord | None:
        return self.refresh.get(token_hash)

    def revoke_refresh_token(self, token_hash: str) -> bool:
        return self.refresh.pop(token_hash, None) is not None

    def revoke_refresh_tokens_of(self, subject_name: str) -> int:
        gone = [h for h, r in self.refresh.items() if r.subject.name == subject_name]
        for token_hash in gone:
            del self.refresh[token_hash]
        return len(gone)
