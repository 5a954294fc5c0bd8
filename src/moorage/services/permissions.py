"""Who may do what: the ``Authorizer`` of ``services/auth_contracts.py``.

Quay's rules, decided from one read of the model (``access_facts``):

- a disabled namespace allows nothing, to anyone (superusers included); nothing is deleted;
- superusers may do everything elsewhere;
- a public repository may be pulled by everyone, anonymous callers included;
- the user whose namespace it is, and the admin teams of an organization, may do everything;
- repository roles granted to the user, to its teams or to the robot: read -> pull;
  write -> pull, push, delete; admin -> also ``*``;
- a robot acts only in its own namespace: elsewhere it is as good as anonymous;
- a repository that does not exist yet may be pushed (and so pulled) by those who may create
  repositories in the namespace: its owner, organization admins and creator teams;
- disabled users, deleted robots and robots of a disabled namespace are as good as anonymous;
- ``registry:catalog:*`` for every authenticated principal (the listing is then filtered by
  ``readable_repositories``).
"""

from __future__ import annotations

from typing import Protocol

from moorage.domain.access import (
    ANONYMOUS,
    CATALOG,
    REGISTRY,
    REPOSITORY,
    ROLE_ACTIONS,
    Action,
    Principal,
    PrincipalKind,
    ResourceScope,
    Role,
    TeamRole,
)
from moorage.domain.accounts import AccessFacts, Subject, SubjectKind, split_robot_name
from moorage.domain.errors import MoorageError
from moorage.domain.names import NAMESPACE_PATTERN, split_full_name
from moorage.domain.records import RepositoryReference
from moorage.model.interface import RepositoryPermissions, Robots, UserAccounts
from moorage.observability import get_logger

log = get_logger(__name__)

EVERYTHING = frozenset(action.value for action in Action)
_PULL = frozenset({Action.PULL.value})
_CREATE = frozenset({Action.PULL.value, Action.PUSH.value})
_NOTHING: frozenset[str] = frozenset()


def _granted(principal: Principal, facts: AccessFacts) -> frozenset[str]:
    """Every action the facts allow (``*`` standing for all of them)."""
    if not facts.namespace_exists:
        # Pushing creates the namespace too: only a superuser may do that.
        return EVERYTHING if facts.principal_superuser else _NOTHING
    if not facts.namespace_enabled:
        return _NOTHING
    if facts.principal_superuser:
        return EVERYTHING
    public = _PULL if facts.repository_exists and facts.repository_public else _NOTHING
    if not facts.principal_active:
        return public
    if principal.kind is PrincipalKind.ROBOT and not facts.robot_of_namespace:
        return public
    if facts.owns_namespace or TeamRole.ADMIN in facts.team_roles:
        return EVERYTHING
    if not facts.repository_exists:
        may_create = TeamRole.CREATOR in facts.team_roles
        return _CREATE if may_create else _NOTHING
    actions = set(public)
    for role in facts.repository_roles:
        actions.update(action.value for action in ROLE_ACTIONS[role])
    return frozenset(actions)


def _checked(principal: Principal) -> Principal:
    """A principal whose name no account can have (say, with a NUL, which PostgreSQL refuses
    in text) is looked up as nobody: anonymous."""
    if principal.kind is PrincipalKind.USER:
        parts: tuple[str, ...] = (principal.name,)
    elif principal.kind is PrincipalKind.ROBOT:
        parts = split_robot_name(principal.name) or ("",)
    else:
        return principal
    return principal if all(NAMESPACE_PATTERN.fullmatch(part) for part in parts) else ANONYMOUS


class PermissionsModel(RepositoryPermissions, Robots, UserAccounts, Protocol):
    """Grants and access facts, and the accounts they name."""


class PermissionService:
    """Answers ``permitted`` (and lists what a principal may read)."""

    def __init__(self, model: PermissionsModel, *, library_support: bool = True) -> None:
        self.model = model
        self.library_support = library_support

    def permitted(self, principal: Principal, scope: ResourceScope) -> frozenset[str]:
        """The actions of ``scope`` that ``principal`` may perform now (possibly none).
        A pure database read: safe on the event loop with SQLite."""
        if scope.type == REGISTRY:
            if scope.name == CATALOG and not principal.is_anonymous:
                return scope.actions & {Action.ALL.value}
            return _NOTHING
        if scope.type != REPOSITORY:
            return _NOTHING
        try:
            namespace, name = split_full_name(scope.name, library=self.library_support)
        except MoorageError:  # not a repository name: nothing to grant
            return _NOTHING
        principal = _checked(principal)
        granted = _granted(principal, self.model.access_facts(principal, namespace, name))
        if Action.ALL.value in granted:
            return scope.actions & EVERYTHING
        return scope.actions & granted

    def may(self, principal: Principal, full_name: str, action: Action) -> bool:
        """Whether ``principal`` may perform ``action`` on the repository ``full_name``."""
        scope = ResourceScope(REPOSITORY, full_name, frozenset({action.value}))
        return bool(self.permitted(principal, scope))

    def readable_repositories(
        self, principal: Principal, after: str | None = None, limit: int | None = None
    ) -> list[str]:
        """``namespace/name`` of every repository ``principal`` may pull (the catalog),
        byte-wise ascending, strictly after ``after``."""
        if after is not None and "\x00" in after:
            # No name holds a NUL (PostgreSQL refuses one in text): what sorts after
            # ``a\x00b`` is exactly what sorts after ``a``.
            after = after[: after.index("\x00")]
        return self.model.list_readable_repository_names(_checked(principal), after, limit)

    def repository_created(self, principal: Principal, repository: RepositoryReference) -> None:
        """Call after a push created ``repository``: as in Quay, its creator gets admin on
        it unless it has that anyway (namespace owner, organization admin, superuser)."""
        if principal.kind is PrincipalKind.ANONYMOUS:
            return
        facts = self.model.access_facts(principal, repository.namespace_name, repository.name)
        if facts.owns_namespace or facts.principal_superuser or TeamRole.ADMIN in facts.team_roles:
            return
        subject = self._subject(principal)
        if subject is not None:
            self.model.set_repository_permission(repository, subject, Role.ADMIN)
            log.info("creator made admin", repository=repository.full_name, to=principal.name)

    def _subject(self, principal: Principal) -> Subject | None:
        if principal.kind is PrincipalKind.USER:
            user = self.model.lookup_user(principal.name)
            return None if user is None else Subject(SubjectKind.USER, user.id)
        parts = split_robot_name(principal.name)
        robot = None if parts is None else self.model.lookup_robot(*parts)
        return None if robot is None else Subject(SubjectKind.ROBOT, robot.id)
