"""Who is asking and what they may do: principals, roles, actions and token scopes.

Pure records shared by the accounts model, the token service and the HTTP access seam. The
scope grammar is distribution's (``docs/spec/auth/scope.md``): ``type:name:action[,action]``,
several separated by single spaces; the name may hold one ``:`` (a ``host:port/`` prefix), so
the type ends at the first colon and the actions start after the last.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from moorage.domain.errors import MoorageError


class ScopeSyntaxError(MoorageError):
    """A scope that does not follow the grammar (400 at the token endpoint)."""


class Action(StrEnum):
    PULL = "pull"
    PUSH = "push"
    DELETE = "delete"
    ALL = "*"


class Role(StrEnum):
    """A repository permission, as Quay grants them to users, teams and robots."""

    READ = "read"
    WRITE = "write"
    ADMIN = "admin"


ROLE_ACTIONS: dict[Role, frozenset[Action]] = {
    Role.READ: frozenset({Action.PULL}),
    # The registry API's DELETE (a manifest and every tag on it, or a blob) cannot be undone
    # by the time machine, so it is an admin's (Quay lets writers delete; issue 12 does not).
    # The REST API's tag delete and restore, which the time machine undoes, stay a write.
    Role.WRITE: frozenset({Action.PULL, Action.PUSH}),
    Role.ADMIN: frozenset({Action.PULL, Action.PUSH, Action.DELETE, Action.ALL}),
}


class TeamRole(StrEnum):
    MEMBER = "member"  # what the team's repository permissions give
    CREATOR = "creator"  # also creates repositories in the organization
    ADMIN = "admin"  # administers the organization and all its repositories


class PrincipalKind(StrEnum):
    ANONYMOUS = "anonymous"
    USER = "user"
    ROBOT = "robot"


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller. ``name`` is a username, a robot's ``org+name``, or ``""``."""

    kind: PrincipalKind
    name: str
    id: int | None = None
    superuser: bool = False

    @property
    def is_anonymous(self) -> bool:
        return self.kind is PrincipalKind.ANONYMOUS


ANONYMOUS = Principal(PrincipalKind.ANONYMOUS, "")

REPOSITORY = "repository"
REGISTRY = "registry"
CATALOG = "catalog"

_TYPE = re.compile(r"^[a-z0-9]+(?:\([a-z0-9]+\))?$")
_ACTION = re.compile(r"^(?:[a-z]*|\*)$")
# Reference-grammar characters only, at most one ":" (a ``host:port/`` prefix): no quotes,
# backslashes, controls or non-ASCII to carry into challenges and logs.
_NAME = re.compile(r"^[A-Za-z0-9._/-]+(?::[A-Za-z0-9._/-]+)?$")
_MAX_SCOPE_LENGTH = 1024


@dataclass(frozen=True, slots=True)
class ResourceScope:
    """One resource and the actions asked for (or granted) on it."""

    type: str
    name: str
    actions: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def parse(cls, text: str) -> ResourceScope:
        if len(text) > _MAX_SCOPE_LENGTH:
            raise ScopeSyntaxError("scope too long")
        kind, sep, rest = text.partition(":")
        name, sep2, actions = rest.rpartition(":")
        if not sep or not sep2 or not _NAME.fullmatch(name) or not _TYPE.fullmatch(kind):
            raise ScopeSyntaxError(f"malformed scope {text[:100]!r}")
        parsed = frozenset(a for a in actions.split(",") if a)
        if not all(_ACTION.fullmatch(action) for action in parsed):
            raise ScopeSyntaxError(f"malformed actions in scope {text[:100]!r}")
        # ``repository(plugin)``: the class suffix is deprecated and ignored.
        return cls(kind.split("(", 1)[0], name, parsed)

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{','.join(sorted(self.actions))}"

    def allows(self, action: str) -> bool:
        return action in self.actions or Action.ALL.value in self.actions


def parse_scopes(values: Iterable[str]) -> list[ResourceScope]:
    """Every scope in ``values``, each of which may hold several separated by spaces."""
    return [ResourceScope.parse(part) for value in values for part in value.split(" ") if part]


def repository_scope(name: str, *actions: Action) -> ResourceScope:
    return ResourceScope(REPOSITORY, name, frozenset(a.value for a in actions))


CATALOG_SCOPE = ResourceScope(REGISTRY, CATALOG, frozenset({Action.ALL.value}))


@dataclass(frozen=True, slots=True)
class Grant:
    """What a verified token (or checked credentials) let the caller do."""

    principal: Principal
    access: tuple[ResourceScope, ...] = ()

    def allows(self, type_: str, name: str, action: str) -> bool:
        return any(s.type == type_ and s.name == name and s.allows(action) for s in self.access)
