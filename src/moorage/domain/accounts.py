"""Account records: users, organizations' teams, robots, application tokens, permissions.

Frozen values returned by the accounts model. Secrets never live here in clear: a user
carries its argon2id hash, robots and application tokens the HMAC of their secret, and
``repr`` leaves the hashes out, so a logged record shows no credential material.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from moorage.domain.access import Role, TeamRole

ROBOT_SEPARATOR = "+"  # ``org+name``: Quay's robot naming
APP_TOKEN_PREFIX = "mrgt_"  # noqa: S105 - marks an application token (passwords may not)


class SubjectKind(StrEnum):
    """Who a repository permission is granted to."""

    USER = "user"
    TEAM = "team"
    ROBOT = "robot"


@dataclass(frozen=True, slots=True)
class UserAccount:
    """A user: a namespace of kind ``user`` with credentials (``id`` is the namespace's)."""

    id: int
    name: str
    email: str | None
    enabled: bool
    superuser: bool
    created: datetime
    password_hash: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class Team:
    id: int
    organization: str
    name: str
    role: TeamRole
    description: str = ""


@dataclass(frozen=True, slots=True)
class TeamMember:
    """A member of a team: a user or a robot (``name`` as it logs in)."""

    kind: SubjectKind
    name: str


@dataclass(frozen=True, slots=True)
class RobotAccount:
    """A robot of a namespace (an organization or a user), logging in as ``namespace+name``."""

    id: int
    namespace: str
    short_name: str
    description: str
    created: datetime
    secret_hash: bytes = field(default=b"", repr=False)

    @property
    def name(self) -> str:
        return f"{self.namespace}{ROBOT_SEPARATOR}{self.short_name}"


@dataclass(frozen=True, slots=True)
class AppToken:
    """An application token of a user: usable as the user's password."""

    id: int
    uuid: str
    user_id: int
    username: str
    title: str
    created: datetime
    expires: datetime | None = None
    token_hash: bytes = field(default=b"", repr=False)


@dataclass(frozen=True, slots=True)
class RepositoryPermission:
    """A role granted on one repository to a user, a team (``org/team`` shown as its name)
    or a robot."""

    repository: str  # namespace/name
    kind: SubjectKind
    name: str
    role: Role


@dataclass(frozen=True, slots=True)
class Subject:
    """A principal as the permission queries see it: a user or robot by id."""

    kind: SubjectKind
    id: int


def split_robot_name(name: str) -> tuple[str, str] | None:
    """``("org", "name")`` for ``org+name``; None when ``name`` is not a robot's."""
    namespace, sep, short = name.partition(ROBOT_SEPARATOR)
    if not sep or not namespace or not short or ROBOT_SEPARATOR in short:
        return None
    return namespace, short


@dataclass(frozen=True, slots=True)
class AccessFacts:
    """What one authorization decision reads, in one database round: the namespace and
    repository named, the principal's standing, and the roles it holds there."""

    namespace_exists: bool
    namespace_enabled: bool = False
    namespace_is_organization: bool = False
    repository_exists: bool = False
    repository_public: bool = False
    # The principal: an enabled user, or a robot whose namespace is enabled.
    principal_active: bool = False
    principal_superuser: bool = False
    owns_namespace: bool = False  # the user whose namespace it is
    robot_of_namespace: bool = False  # a robot owned by this namespace
    team_roles: frozenset[TeamRole] = frozenset()  # in the organization
    repository_roles: frozenset[Role] = frozenset()  # direct, through teams
