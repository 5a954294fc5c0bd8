"""Accounts: users, organizations, teams, robots, application tokens, grants, visibility.

``AccountService`` is the ``Authenticator`` of ``services/auth_contracts.py`` and the one
place that creates or changes accounts (the CLI and, later, the REST API call it).

Secrets: passwords are hashed with argon2id (pwdlib); robot secrets and application tokens
are 256 random bits, so a keyed hash (HMAC-SHA256 under the registry's database-held key)
is enough and costs microseconds, compared in constant time. No secret is ever logged or
put in an error message; a new robot secret or token is returned once and never again.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta
from typing import Protocol

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from moorage.domain.access import Principal, PrincipalKind, Role, TeamRole
from moorage.domain.accounts import (
    APP_TOKEN_PREFIX,
    AppToken,
    RepositoryPermission,
    RobotAccount,
    Subject,
    SubjectKind,
    Team,
    TeamMember,
    UserAccount,
    split_robot_name,
)
from moorage.domain.echo import echo
from moorage.domain.errors import DataModelError, MoorageError, RepositoryNotFoundError
from moorage.domain.names import NAMESPACE_PATTERN, split_full_name
from moorage.domain.records import Namespace, NamespaceKind, RepositoryReference, Visibility
from moorage.model.interface import AccountsAndPermissions, Namespaces, RepositoryLookup
from moorage.observability import get_logger

log = get_logger(__name__)

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024  # argon2 hashes anything, but a megabyte "password" is an attack
MAX_SECRET_LENGTH = 1024
MAX_USERNAME_LENGTH = 255 + 1 + 64  # a robot's: namespace+name
APP_TOKEN_USERNAME = "$app"  # noqa: S105 - Quay's: log in with a token alone
OWNERS_TEAM = "owners"  # Quay's: the team that administers a new organization


class UnknownAccountError(MoorageError):
    """No such user, organization, team, robot, token or grant (the CLI's exit 1)."""


class InvalidPasswordError(MoorageError):
    """A new password that breaks the rules (too short, too long)."""


class LoginSessions(Protocol):
    """Where logins outlive the credential they were made with: the refresh tokens
    (``docker login`` keeps one instead of the password)."""

    def revoke_refresh_tokens_of(self, subject_name: str) -> int:
        """End every refresh token issued to ``subject_name``; how many there were."""
        ...


class AccountsModel(AccountsAndPermissions, Namespaces, RepositoryLookup, Protocol):
    """The accounts protocols plus the namespace and repository lookups accounts need."""


def default_password_hasher() -> PasswordHash:
    """argon2id with OWASP's recommended minimum (19 MiB, 2 passes, 1 lane): ~50 ms here.
    Hashes made with other parameters still verify, and are upgraded at the next login."""
    return PasswordHash((Argon2Hasher(time_cost=2, memory_cost=19456, parallelism=1),))


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidPasswordError(f"passwords have at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidPasswordError(f"passwords have at most {MAX_PASSWORD_LENGTH} characters")
    if password.startswith(APP_TOKEN_PREFIX):
        raise InvalidPasswordError(f"passwords cannot start with {APP_TOKEN_PREFIX!r} (tokens do)")


class AccountService:
    """Creates and changes accounts; answers ``authenticate`` (the ``Authenticator``) and
    ``current`` (the ``PrincipalDirectory``)."""

    def __init__(
        self,
        model: AccountsModel,
        *,
        library_support: bool = True,
        password_hasher: PasswordHash | None = None,
        sessions: LoginSessions | None = None,
    ) -> None:
        """``sessions``: ended whenever the credential behind them changes (a new
        password or robot secret, a revoked token, a deleted robot)."""
        self.model = model
        self.sessions = sessions
        self.library_support = library_support
        self.hasher = password_hasher or default_password_hasher()
        self._dummy_hash: str | None = None

    # -- secrets ---------------------------------------------------------------------------

    def keyed_hash(self, secret: str) -> bytes:
        """HMAC-SHA256 of a robot secret or application token under the registry's key."""
        return hmac.new(self.model.accounts_key(), secret.encode(), hashlib.sha256).digest()

    def _hash_password(self, password: str) -> str:
        check_password(password)
        return self.hasher.hash(password)

    def _burn_password_check(self, password: str) -> None:
        """As long as a real check: unknown names must not answer faster than known ones."""
        if self._dummy_hash is None:
            self._dummy_hash = self.hasher.hash(secrets.token_urlsafe(16))
        self.hasher.verify(password, self._dummy_hash)

    # -- Authenticator ---------------------------------------------------------------------

    def authenticate(self, username: str, secret: str) -> Principal | None:
        """The principal whose credentials these are, or None (unknown name, wrong secret,
        disabled account or namespace: indistinguishable to the caller)."""
        if not secret or len(secret) > MAX_SECRET_LENGTH or len(username) > MAX_USERNAME_LENGTH:
            return None
        robot = split_robot_name(username)
        if robot is not None:
            if not all(NAMESPACE_PATTERN.fullmatch(part) for part in robot):
                return None
            return self._authenticate_robot(robot[0], robot[1], secret)
        if secret.startswith(APP_TOKEN_PREFIX):
            return self._authenticate_token(username, secret)
        if not NAMESPACE_PATTERN.fullmatch(username):
            # No account has such a name; and a NUL would be a database error on PostgreSQL.
            return None
        user = self.model.lookup_user(username)
        if user is None or user.password_hash is None:
            self._burn_password_check(secret)
            return None
        try:
            valid, upgraded = self.hasher.verify_and_update(secret, user.password_hash)
        except Exception:  # an unreadable stored hash: a failed login, not a 500
            log.warning("unreadable password hash", user=username)
            return None
        if not valid or not user.enabled:
            return None
        if upgraded is not None:  # hashed with older parameters: store the current ones
            self.model.set_user_password_hash(username, upgraded)
        return Principal(PrincipalKind.USER, user.name, user.id, user.superuser)

    def _authenticate_robot(self, namespace: str, short_name: str, secret: str) -> Principal | None:
        digest = self.keyed_hash(secret)
        robot = self.model.lookup_robot(namespace, short_name)
        if robot is None or not hmac.compare_digest(digest, robot.secret_hash):
            return None
        owner = self.model.get_namespace(namespace)
        if owner is None or not owner.enabled:
            return None
        return Principal(PrincipalKind.ROBOT, robot.name, robot.id)

    def _authenticate_token(self, username: str, secret: str) -> Principal | None:
        digest = self.keyed_hash(secret)
        token = self.model.lookup_app_token(digest)
        if token is None or not hmac.compare_digest(digest, token.token_hash):
            return None
        if username not in (token.username, APP_TOKEN_USERNAME):
            return None
        if token.expires is not None and token.expires <= datetime.now(UTC):
            return None
        user = self.model.lookup_user(token.username)
        if user is None or not user.enabled:
            return None
        return Principal(PrincipalKind.USER, user.name, user.id, user.superuser)

    def current(self, principal: Principal) -> Principal | None:
        """``principal`` as its account stands now (``PrincipalDirectory``): the superuser
        flag re-read; None if the user is disabled or gone, or the robot deleted or its
        namespace disabled. Anonymous stays anonymous."""
        if principal.kind is PrincipalKind.ANONYMOUS:
            return principal
        if principal.kind is PrincipalKind.ROBOT:
            parts = split_robot_name(principal.name)
            if parts is None or not all(NAMESPACE_PATTERN.fullmatch(part) for part in parts):
                return None
            robot = self.model.lookup_robot(*parts)
            owner = None if robot is None else self.model.get_namespace(parts[0])
            if robot is None or owner is None or not owner.enabled:
                return None
            return Principal(PrincipalKind.ROBOT, robot.name, robot.id)
        if not NAMESPACE_PATTERN.fullmatch(principal.name):
            return None
        user = self.model.lookup_user(principal.name)
        if user is None or not user.enabled:
            return None
        return Principal(PrincipalKind.USER, user.name, user.id, user.superuser)

    # -- users -----------------------------------------------------------------------------

    def create_user(
        self,
        name: str,
        password: str | None,
        *,
        email: str | None = None,
        superuser: bool = False,
    ) -> UserAccount:
        """A user (and its namespace); ``password`` None: token logins only until one is set."""
        password_hash = None if password is None else self._hash_password(password)
        created = self.model.create_user(name, password_hash, email=email, superuser=superuser)
        log.info("user created", user=name, superuser=superuser)
        return created

    def get_user(self, name: str) -> UserAccount:
        user = self.model.lookup_user(name)
        if user is None:
            raise UnknownAccountError(f"no such user: {echo(name)}")
        return user

    def list_users(self) -> list[UserAccount]:
        return self.model.list_users()

    def set_user_enabled(self, name: str, enabled: bool) -> None:
        """A disabled user cannot log in, and tokens issued to it grant nothing."""
        if not self.model.set_user_enabled(name, enabled):
            raise UnknownAccountError(f"no such user: {echo(name)}")
        log.info("user enabled" if enabled else "user disabled", user=name)

    def set_password(self, name: str, password: str) -> None:
        password_hash = self._hash_password(password)
        if not self.model.set_user_password_hash(name, password_hash):
            raise UnknownAccountError(f"no such user: {echo(name)}")
        self._end_sessions(name)
        log.info("password changed", user=name)

    def set_superuser(self, name: str, superuser: bool) -> None:
        if not self.model.set_user_superuser(name, superuser):
            raise UnknownAccountError(f"no such user: {echo(name)}")
        log.info("superuser changed", user=name, superuser=superuser)

    def ensure_initial_superuser(self, name: str, password: str) -> bool:
        """Create the first superuser unless a user of that name exists (then nothing
        changes, not even its password): True when it was created now."""
        if self.model.lookup_user(name) is not None:
            return False
        try:
            self.create_user(name, password, superuser=True)
        except DataModelError:
            # Another worker created it first, or the name is an organization's.
            if self.model.lookup_user(name) is not None:
                return False
            raise
        return True

    # -- organizations and teams -----------------------------------------------------------

    def create_organization(
        self, name: str, *, email: str | None = None, admin: str | None = None
    ) -> Namespace:
        """An organization with an ``owners`` team (role admin), ``admin`` its first member."""
        admin_user = None if admin is None else self.get_user(admin)
        created = self.model.create_namespace(name, NamespaceKind.ORGANIZATION, email=email)
        owners = self.model.create_team(name, OWNERS_TEAM, TeamRole.ADMIN, "administrators")
        if admin_user is not None:
            self.model.add_team_member(owners, Subject(SubjectKind.USER, admin_user.id))
        log.info("organization created", organization=name)
        return created

    def list_organizations(self) -> list[Namespace]:
        return self.model.list_namespaces(NamespaceKind.ORGANIZATION)

    def _organization(self, name: str) -> Namespace:
        found = self.model.get_namespace(name)
        if found is None or found.kind is not NamespaceKind.ORGANIZATION:
            raise UnknownAccountError(f"no such organization: {echo(name)}")
        return found

    def create_team(
        self,
        organization: str,
        name: str,
        role: TeamRole = TeamRole.MEMBER,
        description: str = "",
    ) -> Team:
        self._organization(organization)
        return self.model.create_team(organization, name, role, description)

    def get_team(self, organization: str, name: str) -> Team:
        team = self.model.lookup_team(organization, name)
        if team is None:
            raise UnknownAccountError(f"no such team: {echo(organization)}/{echo(name)}")
        return team

    def list_teams(self, organization: str) -> list[Team]:
        self._organization(organization)
        return self.model.list_teams(organization)

    def set_team_role(self, organization: str, name: str, role: TeamRole) -> None:
        self.model.set_team_role(self.get_team(organization, name), role)

    def list_team_members(self, organization: str, name: str) -> list[TeamMember]:
        return self.model.list_team_members(self.get_team(organization, name))

    def _member(self, organization: str, member: str) -> Subject:
        """A user, or a robot of this organization (Quay lets no other robot in)."""
        robot_name = split_robot_name(member)
        if robot_name is not None:
            if robot_name[0] != organization:
                raise DataModelError(f"robot {echo(member)} belongs to another namespace")
            robot = self.get_robot(member)
            return Subject(SubjectKind.ROBOT, robot.id)
        return Subject(SubjectKind.USER, self.get_user(member).id)

    def add_team_member(self, organization: str, team: str, member: str) -> bool:
        """False if it was a member already."""
        found = self.get_team(organization, team)
        return self.model.add_team_member(found, self._member(organization, member))

    def remove_team_member(self, organization: str, team: str, member: str) -> None:
        found = self.get_team(organization, team)
        if not self.model.remove_team_member(found, self._member(organization, member)):
            raise UnknownAccountError(f"{echo(member)} is not a member of {organization}/{team}")

    # -- robots ----------------------------------------------------------------------------

    def create_robot(
        self, namespace: str, short_name: str, description: str = ""
    ) -> tuple[RobotAccount, str]:
        """A robot of an organization or user, and its secret: shown this once only."""
        if self.model.get_namespace(namespace) is None:
            raise UnknownAccountError(f"no such namespace: {echo(namespace)}")
        secret = secrets.token_urlsafe(32)
        robot = self.model.create_robot(namespace, short_name, self.keyed_hash(secret), description)
        log.info("robot created", robot=robot.name)
        return robot, secret

    def get_robot(self, name: str) -> RobotAccount:
        parts = split_robot_name(name)
        robot = None if parts is None else self.model.lookup_robot(*parts)
        if robot is None:
            raise UnknownAccountError(f"no such robot: {echo(name)}")
        return robot

    def list_robots(self, namespace: str) -> list[RobotAccount]:
        if self.model.get_namespace(namespace) is None:
            raise UnknownAccountError(f"no such namespace: {echo(namespace)}")
        return self.model.list_robots(namespace)

    def regenerate_robot_secret(self, name: str) -> str:
        """A new secret for the robot; the old one stops working at once."""
        robot = self.get_robot(name)
        secret = secrets.token_urlsafe(32)
        self.model.set_robot_secret_hash(robot.namespace, robot.short_name, self.keyed_hash(secret))
        self._end_sessions(robot.name)
        log.info("robot secret regenerated", robot=name)
        return secret

    def delete_robot(self, name: str) -> None:
        robot = self.get_robot(name)
        self.model.delete_robot(robot.namespace, robot.short_name)
        self._end_sessions(robot.name)
        log.info("robot deleted", robot=name)

    # -- application tokens ----------------------------------------------------------------

    def create_app_token(
        self, username: str, title: str, *, expires_in_s: int | None = None
    ) -> tuple[AppToken, str]:
        """A token the user may log in with instead of its password; shown this once."""
        self.get_user(username)
        secret = APP_TOKEN_PREFIX + secrets.token_urlsafe(32)
        expires = (
            None if expires_in_s is None else datetime.now(UTC) + timedelta(seconds=expires_in_s)
        )
        token = self.model.create_app_token(username, title, self.keyed_hash(secret), expires)
        log.info("application token created", user=username, token=token.uuid)
        return token, secret

    def list_app_tokens(self, username: str) -> list[AppToken]:
        self.get_user(username)
        return self.model.list_app_tokens(username)

    def revoke_app_token(self, username: str, token_uuid: str) -> None:
        if not self.model.delete_app_token(username, token_uuid):
            raise UnknownAccountError(f"no such token of {echo(username)}: {echo(token_uuid)}")
        # A refresh token does not record which credential made it: all of the user's
        # logins end (docker login again), never one made with the revoked token survives.
        self._end_sessions(username)
        log.info("application token revoked", user=username, token=token_uuid)

    def _end_sessions(self, subject_name: str) -> None:
        if self.sessions is not None:
            ended = self.sessions.revoke_refresh_tokens_of(subject_name)
            if ended:
                log.info("logins ended", account=subject_name, refresh_tokens=ended)

    # -- repositories ----------------------------------------------------------------------

    def get_repository(self, full_name: str) -> RepositoryReference:
        namespace, name = split_full_name(full_name, library=self.library_support)
        repository = self.model.lookup_repository(namespace, name)
        if repository is None:
            raise RepositoryNotFoundError(f"no such repository: {echo(full_name)}")
        return repository

    def _subject(
        self, repository: RepositoryReference, kind: SubjectKind, name: str
    ) -> Subject | Team:
        if kind is SubjectKind.USER:
            return Subject(SubjectKind.USER, self.get_user(name).id)
        if kind is SubjectKind.TEAM:
            return self.get_team(repository.namespace_name, name)
        robot = self.get_robot(name)
        if robot.namespace != repository.namespace_name:
            # Quay's rule: a robot works only in its own namespace.
            raise DataModelError(
                f"robot {echo(name)} belongs to another namespace than {repository.full_name}"
            )
        return Subject(SubjectKind.ROBOT, robot.id)

    def grant(self, full_name: str, kind: SubjectKind, name: str, role: Role) -> None:
        """Give a user, a team of the repository's organization or a robot of its
        namespace ``role`` on the repository (replacing the role it had)."""
        repository = self.get_repository(full_name)
        self.model.set_repository_permission(
            repository, self._subject(repository, kind, name), role
        )
        log.info("permission granted", repository=full_name, kind=kind.value, to=name, role=role)

    def revoke(self, full_name: str, kind: SubjectKind, name: str) -> None:
        repository = self.get_repository(full_name)
        subject = self._subject(repository, kind, name)
        if not self.model.delete_repository_permission(repository, subject):
            raise UnknownAccountError(f"{kind.value} {echo(name)} has no role on {full_name}")
        log.info("permission revoked", repository=full_name, kind=kind.value, to=name)

    def list_permissions(self, full_name: str) -> list[RepositoryPermission]:
        return self.model.list_repository_permissions(self.get_repository(full_name))

    def set_visibility(self, full_name: str, visibility: Visibility) -> None:
        self.model.set_repository_visibility(self.get_repository(full_name), visibility)
        log.info("visibility changed", repository=full_name, visibility=visibility.value)

    def set_namespace_enabled(self, name: str, enabled: bool) -> None:
        """A disabled namespace refuses every pull and push; nothing in it is deleted."""
        if not self.model.set_namespace_enabled(name, enabled):
            raise UnknownAccountError(f"no such namespace: {echo(name)}")
        log.info("namespace enabled" if enabled else "namespace disabled", namespace=name)
