"""Accounts and permissions: users, teams, robots, application tokens, repository grants."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Connection,
    and_,
    delete,
    exists,
    false,
    or_,
    select,
    true,
    union,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement

from moorage.db import tables as t
from moorage.domain.access import Principal, PrincipalKind, Role, TeamRole
from moorage.domain.accounts import (
    AccessFacts,
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
from moorage.domain.errors import DataModelError
from moorage.domain.names import validate_namespace_name
from moorage.domain.records import (
    Namespace,
    NamespaceKind,
    RepositoryReference,
    RepositoryState,
    Visibility,
)
from moorage.model.sql.base import SqlModelBase, insert_ignoring_conflict, new_uuid
from moorage.model.sql.listing import _bytewise

ACCOUNTS_KEY_NAME = "accounts-hmac-key"
_SHORT_NAME_MAX = 64


def _utc(value: datetime) -> datetime:
    """SQLite hands timezone-aware columns back naive (they were stored in UTC)."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _user_query() -> Any:
    return select(
        t.namespace.c.id,
        t.namespace.c.name,
        t.namespace.c.email,
        t.namespace.c.created,
        t.user_account.c.enabled,
        t.user_account.c.superuser,
        t.user_account.c.password_hash,
    ).join(t.user_account, t.user_account.c.namespace_id == t.namespace.c.id)


def _user(row: Any) -> UserAccount:
    return UserAccount(
        id=row.id,
        name=row.name,
        email=row.email,
        enabled=bool(row.enabled),
        superuser=bool(row.superuser),
        created=_utc(row.created),
        password_hash=row.password_hash,
    )


def _team(row: Any, organization: str) -> Team:
    return Team(
        id=row.id,
        organization=organization,
        name=row.name,
        role=TeamRole(row.role),
        description=row.description,
    )


def _robot(row: Any, namespace: str, *, with_hash: bool) -> RobotAccount:
    return RobotAccount(
        id=row.id,
        namespace=namespace,
        short_name=row.name,
        description=row.description,
        created=_utc(row.created),
        secret_hash=bytes(row.secret_hash) if with_hash else b"",
    )


def _token_query() -> Any:
    return select(t.app_token, t.namespace.c.name.label("username")).join(
        t.namespace, t.namespace.c.id == t.app_token.c.user_id
    )


def _token(row: Any, *, with_hash: bool) -> AppToken:
    return AppToken(
        id=row.id,
        uuid=row.uuid,
        user_id=row.user_id,
        username=row.username,
        title=row.title,
        created=_utc(row.created),
        expires=None if row.expires is None else _utc(row.expires),
        token_hash=bytes(row.token_hash) if with_hash else b"",
    )


def _check_short_name(short_name: str) -> None:
    # The robot's part after ``+``: the namespace grammar (no ``+``, ``/`` or ``:``).
    if len(short_name) > _SHORT_NAME_MAX:
        raise DataModelError(f"robot names are at most {_SHORT_NAME_MAX} characters")
    validate_namespace_name(short_name)


def _subject_columns(subject: Subject | Team) -> dict[str, int | None]:
    """The one column of a permission or membership row naming ``subject``."""
    if isinstance(subject, Team):
        return {"user_id": None, "team_id": subject.id, "robot_id": None}
    if subject.kind is SubjectKind.USER:
        return {"user_id": subject.id, "team_id": None, "robot_id": None}
    if subject.kind is SubjectKind.ROBOT:
        return {"user_id": None, "team_id": None, "robot_id": subject.id}
    raise DataModelError(f"not a user or robot: {subject.kind}")


class AccountsMixin(SqlModelBase):
    _accounts_key: bytes | None = None

    # -- the HMAC key ----------------------------------------------------------------------

    def accounts_key(self) -> bytes:
        if self._accounts_key is not None:
            return self._accounts_key
        query = select(t.registry_secret.c.value).where(
            t.registry_secret.c.name == ACCOUNTS_KEY_NAME
        )
        with self.database.write() as conn:
            value = conn.execute(query).scalar()
            if value is None:
                # First writer wins; every worker then reads the same key.
                insert_ignoring_conflict(
                    conn,
                    t.registry_secret,
                    {
                        "name": ACCOUNTS_KEY_NAME,
                        "value": secrets.token_bytes(32),
                        "created": datetime.now(UTC),
                    },
                    ["name"],
                )
                value = conn.execute(query).scalar_one()
        self._accounts_key = bytes(value)
        return self._accounts_key

    # -- users -----------------------------------------------------------------------------

    def create_user(
        self,
        name: str,
        password_hash: str | None,
        *,
        email: str | None = None,
        superuser: bool = False,
    ) -> UserAccount:
        validate_namespace_name(name)
        values = {
            "uuid": new_uuid(),
            "name": name,
            "kind": NamespaceKind.USER.value,
            "email": email,
            "enabled": True,
            "removed_tag_expiration_s": self.default_removed_tag_expiration_s,
            "created": datetime.now(UTC),
        }
        try:
            with self.database.write() as conn:
                if not insert_ignoring_conflict(conn, t.namespace, values, ["name"]):
                    raise DataModelError(f"namespace {name!r} already exists")
                namespace_id = conn.execute(
                    select(t.namespace.c.id).where(t.namespace.c.name == name)
                ).scalar_one()
                conn.execute(
                    t.user_account.insert().values(
                        namespace_id=namespace_id,
                        password_hash=password_hash,
                        superuser=superuser,
                        enabled=True,
                    )
                )
        except IntegrityError:
            raise DataModelError(f"e-mail address {email!r} is already in use") from None
        found = self.lookup_user(name)
        assert found is not None
        return found

    def lookup_user(self, name: str) -> UserAccount | None:
        with self.database.read() as conn:
            row = conn.execute(_user_query().where(t.namespace.c.name == name)).first()
        return None if row is None else _user(row)

    def list_users(self) -> list[UserAccount]:
        with self.database.read() as conn:
            rows = conn.execute(_user_query().order_by(t.namespace.c.name)).all()
        return [_user(row) for row in rows]

    def _update_user(self, name: str, **values: Any) -> bool:
        user_id = select(t.namespace.c.id).where(t.namespace.c.name == name).scalar_subquery()
        with self.database.write() as conn:
            result = conn.execute(
                update(t.user_account)
                .where(t.user_account.c.namespace_id == user_id)
                .values(**values)
            )
        return result.rowcount == 1

    def set_user_password_hash(self, name: str, password_hash: str | None) -> bool:
        return self._update_user(name, password_hash=password_hash)

    def set_user_enabled(self, name: str, enabled: bool) -> bool:
        return self._update_user(name, enabled=enabled)

    def set_user_superuser(self, name: str, superuser: bool) -> bool:
        return self._update_user(name, superuser=superuser)

    def list_namespaces(self, kind: NamespaceKind) -> list[Namespace]:
        with self.database.read() as conn:
            rows = conn.execute(
                select(t.namespace)
                .where(t.namespace.c.kind == kind.value)
                .order_by(t.namespace.c.name)
            ).all()
        return [
            Namespace(
                id=row.id,
                uuid=row.uuid,
                name=row.name,
                kind=NamespaceKind(row.kind),
                enabled=bool(row.enabled),
                removed_tag_expiration_s=row.removed_tag_expiration_s,
                email=row.email,
            )
            for row in rows
        ]

    # -- teams -----------------------------------------------------------------------------

    def _namespace_row(self, conn: Connection, name: str) -> Any:
        return conn.execute(
            select(t.namespace.c.id, t.namespace.c.kind, t.namespace.c.enabled).where(
                t.namespace.c.name == name
            )
        ).first()

    def create_team(
        self, organization: str, name: str, role: TeamRole, description: str = ""
    ) -> Team:
        validate_namespace_name(name)
        with self.database.write() as conn:
            org = self._namespace_row(conn, organization)
            if org is None or org.kind != NamespaceKind.ORGANIZATION.value:
                raise DataModelError(f"no organization named {organization!r}")
            values = {
                "namespace_id": org.id,
                "name": name,
                "role": TeamRole(role).value,
                "description": description,
                "created": datetime.now(UTC),
            }
            if not insert_ignoring_conflict(conn, t.team, values, ["namespace_id", "name"]):
                raise DataModelError(f"team {organization}/{name} already exists")
        found = self.lookup_team(organization, name)
        assert found is not None
        return found

    def lookup_team(self, organization: str, name: str) -> Team | None:
        with self.database.read() as conn:
            row = conn.execute(
                select(t.team)
                .join(t.namespace, t.namespace.c.id == t.team.c.namespace_id)
                .where(t.namespace.c.name == organization, t.team.c.name == name)
            ).first()
        return None if row is None else _team(row, organization)

    def list_teams(self, organization: str) -> list[Team]:
        with self.database.read() as conn:
            rows = conn.execute(
                select(t.team)
                .join(t.namespace, t.namespace.c.id == t.team.c.namespace_id)
                .where(t.namespace.c.name == organization)
                .order_by(t.team.c.name)
            ).all()
        return [_team(row, organization) for row in rows]

    def set_team_role(self, team: Team, role: TeamRole) -> bool:
        with self.database.write() as conn:
            result = conn.execute(
                update(t.team).where(t.team.c.id == team.id).values(role=TeamRole(role).value)
            )
        return result.rowcount == 1

    def add_team_member(self, team: Team, member: Subject) -> bool:
        columns = _subject_columns(member)
        del columns["team_id"]
        conflict = ["team_id", "user_id" if member.kind is SubjectKind.USER else "robot_id"]
        with self.database.write() as conn:
            return insert_ignoring_conflict(
                conn, t.team_member, {"team_id": team.id, **columns}, conflict
            )

    def remove_team_member(self, team: Team, member: Subject) -> bool:
        column = t.team_member.c.user_id if member.kind is SubjectKind.USER else None
        if column is None:
            column = t.team_member.c.robot_id
        with self.database.write() as conn:
            result = conn.execute(
                delete(t.team_member).where(t.team_member.c.team_id == team.id, column == member.id)
            )
        return bool(result.rowcount)

    def list_team_members(self, team: Team) -> list[TeamMember]:
        owner = t.namespace.alias("owner")
        with self.database.read() as conn:
            users = conn.execute(
                select(t.namespace.c.name)
                .join(t.team_member, t.team_member.c.user_id == t.namespace.c.id)
                .where(t.team_member.c.team_id == team.id)
                .order_by(t.namespace.c.name)
            ).all()
            robots = conn.execute(
                select(owner.c.name.label("namespace"), t.robot.c.name)
                .join(t.team_member, t.team_member.c.robot_id == t.robot.c.id)
                .join(owner, owner.c.id == t.robot.c.namespace_id)
                .where(t.team_member.c.team_id == team.id)
                .order_by(owner.c.name, t.robot.c.name)
            ).all()
        return [TeamMember(SubjectKind.USER, row.name) for row in users] + [
            TeamMember(SubjectKind.ROBOT, f"{row.namespace}+{row.name}") for row in robots
        ]

    # -- robots ----------------------------------------------------------------------------

    def create_robot(
        self, namespace: str, short_name: str, secret_hash: bytes, description: str = ""
    ) -> RobotAccount:
        _check_short_name(short_name)
        with self.database.write() as conn:
            owner = self._namespace_row(conn, namespace)
            if owner is None:
                raise DataModelError(f"no namespace named {namespace!r}")
            values = {
                "namespace_id": owner.id,
                "name": short_name,
                "secret_hash": secret_hash,
                "description": description,
                "created": datetime.now(UTC),
            }
            if not insert_ignoring_conflict(conn, t.robot, values, ["namespace_id", "name"]):
                raise DataModelError(f"robot {namespace}+{short_name} already exists")
        found = self.lookup_robot(namespace, short_name)
        assert found is not None
        return found

    def _robot_where(self, namespace: str, short_name: str) -> ColumnElement[bool]:
        owner_id = select(t.namespace.c.id).where(t.namespace.c.name == namespace)
        return and_(
            t.robot.c.namespace_id == owner_id.scalar_subquery(), t.robot.c.name == short_name
        )

    def lookup_robot(self, namespace: str, short_name: str) -> RobotAccount | None:
        with self.database.read() as conn:
            row = conn.execute(
                select(t.robot).where(self._robot_where(namespace, short_name))
            ).first()
        return None if row is None else _robot(row, namespace, with_hash=True)

    def list_robots(self, namespace: str) -> list[RobotAccount]:
        with self.database.read() as conn:
            rows = conn.execute(
                select(t.robot)
                .join(t.namespace, t.namespace.c.id == t.robot.c.namespace_id)
                .where(t.namespace.c.name == namespace)
                .order_by(t.robot.c.name)
            ).all()
        return [_robot(row, namespace, with_hash=False) for row in rows]

    def set_robot_secret_hash(self, namespace: str, short_name: str, secret_hash: bytes) -> bool:
        with self.database.write() as conn:
            result = conn.execute(
                update(t.robot)
                .where(self._robot_where(namespace, short_name))
                .values(secret_hash=secret_hash)
            )
        return result.rowcount == 1

    def delete_robot(self, namespace: str, short_name: str) -> bool:
        where = self._robot_where(namespace, short_name)
        with self.database.write() as conn:
            # Explicitly, not by cascade alone: SQLite enforces foreign keys only when told to.
            robot_id = conn.execute(select(t.robot.c.id).where(where)).scalar()
            if robot_id is None:
                return False
            conn.execute(delete(t.team_member).where(t.team_member.c.robot_id == robot_id))
            conn.execute(
                delete(t.repository_permission).where(
                    t.repository_permission.c.robot_id == robot_id
                )
            )
            conn.execute(delete(t.robot).where(t.robot.c.id == robot_id))
        return True

    # -- application tokens ----------------------------------------------------------------

    def create_app_token(
        self, username: str, title: str, token_hash: bytes, expires: datetime | None = None
    ) -> AppToken:
        token_uuid = new_uuid()
        with self.database.write() as conn:
            user_id = conn.execute(
                select(t.user_account.c.namespace_id)
                .join(t.namespace, t.namespace.c.id == t.user_account.c.namespace_id)
                .where(t.namespace.c.name == username)
            ).scalar()
            if user_id is None:
                raise DataModelError(f"no user named {username!r}")
            conn.execute(
                t.app_token.insert().values(
                    uuid=token_uuid,
                    user_id=user_id,
                    title=title,
                    token_hash=token_hash,
                    created=datetime.now(UTC),
                    expires=expires,
                )
            )
            row = conn.execute(_token_query().where(t.app_token.c.uuid == token_uuid)).one()
        return _token(row, with_hash=False)

    def lookup_app_token(self, token_hash: bytes) -> AppToken | None:
        with self.database.read() as conn:
            row = conn.execute(_token_query().where(t.app_token.c.token_hash == token_hash)).first()
        return None if row is None else _token(row, with_hash=True)

    def list_app_tokens(self, username: str) -> list[AppToken]:
        with self.database.read() as conn:
            rows = conn.execute(
                _token_query()
                .where(t.namespace.c.name == username)
                .order_by(t.app_token.c.created, t.app_token.c.id)
            ).all()
        return [_token(row, with_hash=False) for row in rows]

    def delete_app_token(self, username: str, token_uuid: str) -> bool:
        user_id = select(t.namespace.c.id).where(t.namespace.c.name == username).scalar_subquery()
        with self.database.write() as conn:
            result = conn.execute(
                delete(t.app_token).where(
                    t.app_token.c.user_id == user_id, t.app_token.c.uuid == token_uuid
                )
            )
        return bool(result.rowcount)

    # -- repository permissions and visibility ---------------------------------------------

    def set_repository_permission(
        self, repository: RepositoryReference, subject: Subject | Team, role: Role
    ) -> None:
        columns = _subject_columns(subject)
        key = next(name for name, value in columns.items() if value is not None)
        with self.database.write() as conn:
            inserted = insert_ignoring_conflict(
                conn,
                t.repository_permission,
                {"repository_id": repository.id, **columns, "role": Role(role).value},
                ["repository_id", key],
            )
            if not inserted:
                conn.execute(
                    update(t.repository_permission)
                    .where(
                        t.repository_permission.c.repository_id == repository.id,
                        t.repository_permission.c[key] == columns[key],
                    )
                    .values(role=Role(role).value)
                )

    def delete_repository_permission(
        self, repository: RepositoryReference, subject: Subject | Team
    ) -> bool:
        columns = _subject_columns(subject)
        key = next(name for name, value in columns.items() if value is not None)
        with self.database.write() as conn:
            result = conn.execute(
                delete(t.repository_permission).where(
                    t.repository_permission.c.repository_id == repository.id,
                    t.repository_permission.c[key] == columns[key],
                )
            )
        return bool(result.rowcount)

    def list_repository_permissions(
        self, repository: RepositoryReference
    ) -> list[RepositoryPermission]:
        p = t.repository_permission
        owner = t.namespace.alias("owner")
        full_name = repository.full_name
        with self.database.read() as conn:
            users = conn.execute(
                select(t.namespace.c.name, p.c.role)
                .join(p, p.c.user_id == t.namespace.c.id)
                .where(p.c.repository_id == repository.id)
                .order_by(t.namespace.c.name)
            ).all()
            teams = conn.execute(
                select(t.team.c.name, p.c.role)
                .join(p, p.c.team_id == t.team.c.id)
                .where(p.c.repository_id == repository.id)
                .order_by(t.team.c.name)
            ).all()
            robots = conn.execute(
                select(owner.c.name.label("namespace"), t.robot.c.name, p.c.role)
                .join(p, p.c.robot_id == t.robot.c.id)
                .join(owner, owner.c.id == t.robot.c.namespace_id)
                .where(p.c.repository_id == repository.id)
                .order_by(owner.c.name, t.robot.c.name)
            ).all()
        return (
            [RepositoryPermission(full_name, SubjectKind.USER, r.name, Role(r.role)) for r in users]
            + [
                RepositoryPermission(full_name, SubjectKind.TEAM, r.name, Role(r.role))
                for r in teams
            ]
            + [
                RepositoryPermission(
                    full_name, SubjectKind.ROBOT, f"{r.namespace}+{r.name}", Role(r.role)
                )
                for r in robots
            ]
        )

    def set_repository_visibility(
        self, repository: RepositoryReference, visibility: Visibility
    ) -> None:
        with self.database.write() as conn:
            conn.execute(
                update(t.repository)
                .where(t.repository.c.id == repository.id)
                .values(visibility=Visibility(visibility).value)
            )

    # -- decisions -------------------------------------------------------------------------

    def _principal_row(self, conn: Connection, principal: Principal) -> Any:
        """``(id, active, superuser, namespace_id)`` of the principal as it stands now."""
        if principal.kind is PrincipalKind.USER:
            row = conn.execute(
                select(
                    t.namespace.c.id,
                    t.user_account.c.enabled.label("active"),
                    t.user_account.c.superuser,
                    t.namespace.c.id.label("namespace_id"),
                )
                .join(t.user_account, t.user_account.c.namespace_id == t.namespace.c.id)
                .where(t.namespace.c.name == principal.name)
            ).first()
            return row
        if principal.kind is PrincipalKind.ROBOT:
            parts = split_robot_name(principal.name)
            if parts is None:
                return None
            return conn.execute(
                select(
                    t.robot.c.id,
                    t.namespace.c.enabled.label("active"),
                    false().label("superuser"),
                    t.robot.c.namespace_id,
                )
                .join(t.namespace, t.namespace.c.id == t.robot.c.namespace_id)
                .where(t.namespace.c.name == parts[0], t.robot.c.name == parts[1])
            ).first()
        return None

    def _member_teams(self, principal: Principal, principal_id: int) -> Any:
        """The ids of the principal's teams, as a subquery."""
        column = (
            t.team_member.c.user_id
            if principal.kind is PrincipalKind.USER
            else t.team_member.c.robot_id
        )
        return select(t.team_member.c.team_id).where(column == principal_id)

    def access_facts(self, principal: Principal, namespace: str, repository: str) -> AccessFacts:
        with self.database.read() as conn:
            ns = self._namespace_row(conn, namespace)
            if ns is None:
                who = self._principal_row(conn, principal)
                return AccessFacts(
                    namespace_exists=False,
                    principal_active=who is not None and bool(who.active),
                    principal_superuser=who is not None and bool(who.active and who.superuser),
                )
            repo = conn.execute(
                select(t.repository.c.id, t.repository.c.visibility).where(
                    t.repository.c.namespace_id == ns.id, t.repository.c.name == repository
                )
            ).first()
            facts: dict[str, Any] = {
                "namespace_exists": True,
                "namespace_enabled": bool(ns.enabled),
                "namespace_is_organization": ns.kind == NamespaceKind.ORGANIZATION.value,
                "repository_exists": repo is not None,
                "repository_public": repo is not None
                and repo.visibility == Visibility.PUBLIC.value,
            }
            who = self._principal_row(conn, principal)
            if who is None or not who.active:
                return AccessFacts(**facts)
            teams = self._member_teams(principal, who.id)
            team_roles = conn.execute(
                select(t.team.c.role).where(t.team.c.namespace_id == ns.id, t.team.c.id.in_(teams))
            ).scalars()
            repository_roles: list[str] = []
            if repo is not None:
                p = t.repository_permission
                mine = p.c.user_id if principal.kind is PrincipalKind.USER else p.c.robot_id
                repository_roles = list(
                    conn.execute(
                        select(p.c.role).where(
                            p.c.repository_id == repo.id,
                            or_(mine == who.id, p.c.team_id.in_(teams)),
                        )
                    ).scalars()
                )
            return AccessFacts(
                **facts,
                principal_active=True,
                principal_superuser=bool(who.superuser),
                owns_namespace=principal.kind is PrincipalKind.USER and who.id == ns.id,
                robot_of_namespace=principal.kind is PrincipalKind.ROBOT
                and who.namespace_id == ns.id,
                team_roles=frozenset(TeamRole(role) for role in team_roles),
                repository_roles=frozenset(Role(role) for role in repository_roles),
            )

    def list_readable_repository_names(
        self, principal: Principal, after: str | None = None, limit: int | None = None
    ) -> list[str]:
        r, ns = t.repository, t.namespace
        full_name = ns.c.name + "/" + r.c.name
        with self.database.read() as conn:
            readable = self._readable_by(conn, principal)
            # The order (and paging) of ``list_repository_names``: byte-wise on the full name.
            ordered = _bytewise(conn, full_name)
            query = (
                select(full_name.label("full_name"))
                .join(ns, ns.c.id == r.c.namespace_id)
                .where(
                    ns.c.enabled.is_(True),
                    r.c.kind == "image",
                    r.c.state != RepositoryState.MARKED_FOR_DELETION.value,
                    readable,
                )
                .order_by(ordered)
            )
            if after is not None:
                query = query.where(ordered > after)
            if limit is not None:
                query = query.limit(limit)
            return [str(name) for name in conn.execute(query).scalars()]

    def _readable_by(self, conn: Connection, principal: Principal) -> ColumnElement[bool]:
        """The condition on ``repository`` rows that ``principal`` may pull (the enabled
        namespace, kind and state are the caller's to add)."""
        r = t.repository
        who = self._principal_row(conn, principal)
        readable: ColumnElement[bool] = r.c.visibility == Visibility.PUBLIC.value
        if who is None or not who.active:
            return readable
        if who.superuser:
            return true()
        p = t.repository_permission
        teams = self._member_teams(principal, who.id)
        mine = p.c.user_id if principal.kind is PrincipalKind.USER else p.c.robot_id
        granted = union(
            select(p.c.repository_id).where(mine == who.id),
            select(p.c.repository_id).where(p.c.team_id.in_(teams)),
        )
        admin_orgs = select(t.team.c.namespace_id).where(
            t.team.c.id.in_(teams), t.team.c.role == TeamRole.ADMIN.value
        )
        conditions = [readable, r.c.id.in_(granted), r.c.namespace_id.in_(admin_orgs)]
        if principal.kind is PrincipalKind.USER:
            conditions.append(r.c.namespace_id == who.id)
        return or_(*conditions)

    def find_readable_repository_with_blob(
        self, reader: Principal | None, digest: str
    ) -> RepositoryReference | None:
        r, ns, b = t.repository, t.namespace, t.blob
        with self.database.read() as conn:
            readable = true() if reader is None else self._readable_by(conn, reader)
            linked = or_(
                exists().where(
                    t.manifest_blob.c.blob_id == b.c.id,
                    t.manifest_blob.c.repository_id == r.c.id,
                    t.manifest.c.id == t.manifest_blob.c.manifest_id,
                    t.manifest.c.deleted_at_ms.is_(None),
                ),
                exists().where(
                    t.legacy_image.c.blob_id == b.c.id,
                    t.legacy_image.c.repository_id == r.c.id,
                    t.legacy_image.c.v1_pushed.is_(True),
                ),
                exists().where(
                    t.uploaded_blob.c.blob_id == b.c.id,
                    t.uploaded_blob.c.repository_id == r.c.id,
                    t.uploaded_blob.c.expires_at_ms > self.now_ms(),
                ),
            )
            found = conn.execute(
                select(r.c.id)
                .join(ns, ns.c.id == r.c.namespace_id)
                .join(b, b.c.digest == digest)
                .where(
                    b.c.uploading.is_(False),
                    exists().where(t.blob_placement.c.blob_id == b.c.id),
                    ns.c.enabled.is_(True),
                    r.c.kind == "image",
                    r.c.state != RepositoryState.MARKED_FOR_DELETION.value,
                    readable,
                    linked,
                )
                .limit(1)
            ).scalar()
            return None if found is None else self.repository_ref(conn, found)
