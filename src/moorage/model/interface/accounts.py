"""Accounts and permissions. Secrets come in already hashed: the model never sees one in
clear. Names are namespace names (a user is a namespace of kind user); a missing name makes
lookups return None and changes return False, never raise.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from moorage.domain.access import Principal, Role, TeamRole
from moorage.domain.accounts import (
    AccessFacts,
    AppToken,
    RepositoryPermission,
    RobotAccount,
    Subject,
    Team,
    TeamMember,
    UserAccount,
)
from moorage.domain.records import (
    Namespace,
    NamespaceKind,
    RepositoryReference,
    Visibility,
)


class UserAccounts(Protocol):
    """Users (namespaces of kind user), superusers, and the key for keyed secrets."""

    def accounts_key(self) -> bytes:
        """The registry's key for HMAC-SHA256 of robot secrets and application tokens,
        kept in the database so every worker agrees; the first caller creates it."""
        ...

    def create_user(
        self,
        name: str,
        password_hash: str | None,
        *,
        email: str | None = None,
        superuser: bool = False,
    ) -> UserAccount:
        """The user's namespace and credentials in one transaction; ``DataModelError``
        if the name (or e-mail address) is taken."""
        ...

    def lookup_user(self, name: str) -> UserAccount | None:
        """The user named ``name``, its password hash loaded; None for organizations."""
        ...

    def list_users(self) -> list[UserAccount]:
        """Every user, by name."""
        ...

    def set_user_password_hash(self, name: str, password_hash: str | None) -> bool:
        """Replace the user's password hash (None: no password login)."""
        ...

    def set_user_enabled(self, name: str, enabled: bool) -> bool:
        """A disabled user cannot log in and its credentials grant nothing."""
        ...

    def set_user_superuser(self, name: str, superuser: bool) -> bool:
        """Make or unmake a superuser."""
        ...

    def list_namespaces(self, kind: NamespaceKind) -> list[Namespace]:
        """Every namespace of ``kind``, by name."""
        ...


class Teams(Protocol):
    """Organizations' teams, their roles and members."""

    def create_team(
        self, organization: str, name: str, role: TeamRole, description: str = ""
    ) -> Team:
        """A team of an organization; ``DataModelError`` if the organization does not
        exist (or is a user) or the team exists."""
        ...

    def lookup_team(self, organization: str, name: str) -> Team | None:
        """The team ``name`` of ``organization``."""
        ...

    def list_teams(self, organization: str) -> list[Team]:
        """The organization's teams, by name."""
        ...

    def set_team_role(self, team: Team, role: TeamRole) -> bool:
        """Change what the team's membership gives in its organization."""
        ...

    def add_team_member(self, team: Team, member: Subject) -> bool:
        """Add a user or robot; False if it was a member already."""
        ...

    def remove_team_member(self, team: Team, member: Subject) -> bool:
        """Remove a user or robot; False if it was not a member."""
        ...

    def list_team_members(self, team: Team) -> list[TeamMember]:
        """Users then robots of the team, by name."""
        ...


class Robots(Protocol):
    """Robot accounts (``namespace+name``) and their hashed secrets."""

    def create_robot(
        self, namespace: str, short_name: str, secret_hash: bytes, description: str = ""
    ) -> RobotAccount:
        """A robot of an organization or user; ``DataModelError`` if the namespace does
        not exist or the robot does."""
        ...

    def lookup_robot(self, namespace: str, short_name: str) -> RobotAccount | None:
        """The robot, its secret hash loaded."""
        ...

    def list_robots(self, namespace: str) -> list[RobotAccount]:
        """The namespace's robots, by name (no hashes)."""
        ...

    def set_robot_secret_hash(self, namespace: str, short_name: str, secret_hash: bytes) -> bool:
        """Replace the robot's secret (the old one stops working at once)."""
        ...

    def delete_robot(self, namespace: str, short_name: str) -> bool:
        """Delete the robot with its team memberships and permissions."""
        ...


class AppTokens(Protocol):
    """Application tokens: a user's logins without its password."""

    def create_app_token(
        self, username: str, title: str, token_hash: bytes, expires: datetime | None = None
    ) -> AppToken:
        """An application token of the user; ``DataModelError`` for an unknown user."""
        ...

    def lookup_app_token(self, token_hash: bytes) -> AppToken | None:
        """The token with this HMAC, whoever owns it (expired ones included)."""
        ...

    def list_app_tokens(self, username: str) -> list[AppToken]:
        """The user's tokens, oldest first (no hashes)."""
        ...

    def delete_app_token(self, username: str, token_uuid: str) -> bool:
        """Revoke one of the user's tokens."""
        ...


class RepositoryPermissions(Protocol):
    """Grants, visibility, and what a principal may do where."""

    def set_repository_permission(
        self, repository: RepositoryReference, subject: Subject | Team, role: Role
    ) -> None:
        """Grant ``role`` on the repository to a user, robot or team (replacing its role)."""
        ...

    def delete_repository_permission(
        self, repository: RepositoryReference, subject: Subject | Team
    ) -> bool:
        """Revoke what was granted to the subject directly; False if there was nothing."""
        ...

    def list_repository_permissions(
        self, repository: RepositoryReference
    ) -> list[RepositoryPermission]:
        """Every grant on the repository: users, teams (``team`` by name), robots."""
        ...

    def set_repository_visibility(
        self, repository: RepositoryReference, visibility: Visibility
    ) -> None:
        """Public repositories can be pulled by anyone, anonymous callers included."""
        ...

    def access_facts(self, principal: Principal, namespace: str, repository: str) -> AccessFacts:
        """Everything one decision on ``namespace/repository`` needs, read together: see
        ``AccessFacts``. A pure database read (safe on the event loop with SQLite)."""
        ...

    def list_readable_repository_names(
        self, principal: Principal, after: str | None = None, limit: int | None = None
    ) -> list[str]:
        """``namespace/name`` of the repositories ``principal`` may pull, sorted, after
        ``after``: public ones, its namespace's, its organizations' (team admin) and those
        granted to it or its teams; all of them for a superuser; none in a disabled
        namespace."""
        ...


class AccountsAndPermissions(
    UserAccounts,
    Teams,
    Robots,
    AppTokens,
    RepositoryPermissions,
    Protocol,
):
    """Every accounts and permissions protocol above."""
