"""``moorage user|org|team|robot|repo|namespace``: accounts and permissions (docs/accounts.md).

Every command works on the configured database directly (no server needed). Exit status: 0
done; 1 refused (no such user, name taken, ...) with one line on stderr; 2 bad usage.
Passwords are read from a prompt, or from the first line of standard input with
``--password-stdin``; ``--password`` on the command line works but warns (other users of the
machine can read it).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from moorage.cli.options import ConfigOption, DatabaseUrlOption

if TYPE_CHECKING:
    from moorage.app import Accounts
    from moorage.domain.accounts import SubjectKind


class Output(StrEnum):
    TEXT = "text"
    JSON = "json"


class RoleChoice(StrEnum):
    READ = "read"
    WRITE = "write"
    ADMIN = "admin"


class TeamRoleChoice(StrEnum):
    MEMBER = "member"
    CREATOR = "creator"
    ADMIN = "admin"


class VisibilityChoice(StrEnum):
    PUBLIC = "public"
    PRIVATE = "private"


OutputOption = Annotated[
    Output, typer.Option("--output", "-o", help="text for people, json for scripts.")
]
PasswordStdinOption = Annotated[
    bool,
    typer.Option("--password-stdin", help="Read the password from the first line of stdin."),
]
PasswordOption = Annotated[
    str | None,
    typer.Option(
        "--password",
        help="The password itself (visible to other users of the machine: prefer a prompt "
        "or --password-stdin).",
    ),
]

user_app = typer.Typer(help="Users: create, list, disable, passwords.", no_args_is_help=True)
token_app = typer.Typer(help="A user's application tokens.", no_args_is_help=True)
org_app = typer.Typer(help="Organizations.", no_args_is_help=True)
team_app = typer.Typer(help="An organization's teams and their members.", no_args_is_help=True)
robot_app = typer.Typer(help="Robot accounts (namespace+name).", no_args_is_help=True)
repo_app = typer.Typer(help="Repository visibility and permissions.", no_args_is_help=True)
namespace_app = typer.Typer(help="Enable or disable a whole namespace.", no_args_is_help=True)
user_app.add_typer(token_app, name="token")


@contextmanager
def _accounts(
    config: Any, database_url: str | None, *, read_only: bool = False
) -> Iterator[Accounts]:
    """The account services; a ``read_only`` command (a listing) creates nothing: no data
    directory, no database file, no key, no superuser."""
    from moorage.app import open_accounts  # heavy; keeps `moorage --help` quick
    from moorage.config import load_settings

    # Only warnings on stderr: the command prints its own result.
    settings = load_settings(config, database_url=database_url, log_level="warning")
    if read_only:
        _refuse_missing_database(settings.database_url)
    accounts = open_accounts(settings)
    try:
        yield accounts
    finally:
        accounts.close()


def _refuse_missing_database(url: str) -> None:
    from pathlib import Path

    from moorage.db.engine import sqlite_file
    from moorage.domain.errors import ConfigError

    database_file = sqlite_file(url)
    if database_file is not None and not Path(database_file).expanduser().exists():
        raise ConfigError(
            f"no database at {database_file}: run 'moorage db upgrade' or start the server first"
        )


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {
            key: _plain(item)
            for key, item in asdict(value).items()
            if key not in ("password_hash", "secret_hash", "token_hash", "id", "user_id")
        }
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _emit(output: Output, data: Any, text: str) -> None:
    if output is Output.JSON:
        typer.echo(json.dumps(_plain(data), indent=2))
    else:
        typer.echo(text)


def _table(rows: Sequence[Sequence[str]], headers: Sequence[str]) -> str:
    if not rows:
        return "(none)"
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]
    lines = [[*headers], *[[str(cell) for cell in row] for row in rows]]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def _read_password(password_stdin: bool, password: str | None, *, confirm: bool) -> str:
    if password_stdin and password is not None:
        raise typer.BadParameter("give --password-stdin or --password, not both")
    if password is not None:
        typer.echo(
            "warning: a password given on the command line can be seen by other users; "
            "prefer the prompt or --password-stdin",
            err=True,
        )
        return password
    if password_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise typer.BadParameter("no password on standard input", param_hint="--password-stdin")
        return line
    if not sys.stdin.isatty():
        raise typer.BadParameter(
            "no terminal to ask for the password on: use --password-stdin",
            param_hint="password",
        )
    entered: str = typer.prompt("Password", hide_input=True, confirmation_prompt=confirm)
    return entered


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


# -- users -------------------------------------------------------------------------------


@user_app.command("create")
def user_create(
    name: Annotated[str, typer.Argument(help="User name (also its namespace).")],
    email: Annotated[str | None, typer.Option(help="E-mail address.")] = None,
    superuser: Annotated[bool, typer.Option("--superuser", help="May do everything.")] = False,
    no_password: Annotated[
        bool, typer.Option("--no-password", help="No password: application tokens only.")
    ] = False,
    password_stdin: PasswordStdinOption = False,
    password: PasswordOption = None,
    output: OutputOption = Output.TEXT,
    config: ConfigOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Create a user (asks for its password)."""
    secret = None if no_password else _read_password(password_stdin, password, confirm=True)
    with _accounts(config, database_url) as handle:
        created = handle.accounts.create_user(name, secret, email=email, superuser=superuser)
    kind = "superuser" if superuser else "user"
    _emit(output, created, f"created {kind} {created.name}")


@user_app.command("list")
def user_list(
    output: OutputOption = Output.TEXT,
    config: ConfigOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """List the users."""
    with _accounts(config, database_url, read_only=True) as handle:
        users = handle.accounts.list_users()
    rows = [(u.name, u.email or "", _yes(u.enabled), _yes(u.superuser)) for u in users]
    _emit(output, users, _table(rows, ("NAME", "EMAIL", "ENABLED", "SUPERUSER")))


@user_app.command("disable")
def user_disable(
    name: str, config: ConfigOption = None, database_url: DatabaseUrlOption = None
) -> None:
    """Disable a user: it can no longer log in, and its tokens grant nothing."""
    with _accounts(config, database_url) as handle:
        handle.accounts.set_user_enabled(name, False)
    typer.echo(f"disabled user {name}")


@user_app.command("enable")
def user_enable(
    name: str, config: ConfigOption = None, database_url: DatabaseUrlOption = None
) -> None:
    """Enable a disabled user again."""
    with _accounts(config, database_url) as handle:
        handle.accounts.set_user_enabled(name, True)
    typer.echo(f"enabled user {name}")


@user_app.command("set-password")
def user_set_password(
    name: str,
    password_stdin: PasswordStdinOption = False,
    password: PasswordOption = None,
    config: ConfigOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Set a user's password (asks for it)."""
    secret = _read_password(password_stdin, password, confirm=True)
    with _accounts(config, database_url) as handle:
        handle.accounts.set_password(name, secret)
    typer.echo(f"password of {name} changed")


@user_app.command("superuser")
def user_superuser(
    name: str,
    remove: Annotated[bool, typer.Option("--remove", help="Take superuser rights away.")] = False,
    config: ConfigOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Make a user a superuser (or, with --remove, an ordinary user)."""
    with _accounts(config, database_url) as handle:
        handle.accounts.set_superuser(name, not remove)
    typer.echo(f"{name} is {'no longer ' if remove else ''}a superuser")


@token_app.command("create")
def token_create(
    user: str,
    title: Annotated[str, typer.Option(help="What the token is for.")] = "cli",
    expires_in_s: Annotated[
        int | None, typer.Option("--expires-in-s", min=60, help="Lifetime in seconds.")
    ] = None,
    output: OutputOption = Output.TEXT,
    config: ConfigOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Create an application token (usable as the password); prints it once."""
    with _accounts(config, database_url) as handle:
        token, secret = handle.accounts.create_app_token(user, title, expires_in_s=expires_in_s)
    if output is Output.JSON:
        _emit(output, {**_plain(token), "token": secret}, "")
        return
    typer.echo(secret)
    typer.echo(f"token {token.uuid} of {user}: store it now, it is not shown again", err=True)


@token_app.command("list")
def token_list(
    user: str,
    output: OutputOption = Output.TEXT,
    config: ConfigOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """List a user's application tokens (never the tokens themselves)."""
    with _accounts(config, database_url, read_only=True) as handle:
        tokens = handle.accounts.list_app_tokens(user)
    rows = [
        (
            t.uuid,
            t.title,
            t.created.isoformat(timespec="seconds"),
            t.expires.isoformat(timespec="seconds") if t.expires else "",
        )
        for t in tokens
    ]
    _emit(output, tokens, _table(rows, ("UUID", "TITLE", "CREATED", "EXPIRES")))


@token_app.command("revoke")
def token_revoke(
    user: str,
    token_uuid: Annotated[str, typer.Argument(metavar="UUID")],
    config: ConfigOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Revoke one of a user's application tokens."""
    with _accounts(config, database_url) as handle:
        handle.accounts.revoke_app_token(user, token_uuid)
    typer.echo(f"revoked token {token_uuid}")


# -- organizations and teams -------------------------------------------------------------


@org_app.command("create")
def org_create(
    name: str,
    email: Annotated[str | None, typer.Option(help="E-mail address.")] = None,
    admin: Annotated[
        str | None, typer.Option(help="A user to put in the 'owners' team (role admin).")
    ] = None,
    output: OutputOption = Output.TEXT,
    config: ConfigOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Create an organization, with an 'owners' team of role admin."""
    with _accounts(config, database_url) as handle:
        created = handle.accounts.create_organization(name, email=email, admin=admin)
    data = {"name": created.name, "email": created.email, "enabled": created.enabled}
    _emit(output, data, f"created organization {created.name}")


@org_app.command("list")
def org_list(
    output: OutputOption = Output.TEXT,
    config: ConfigOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """List the organizations."""
    with _accounts(config, database_url, read_only=True) as handle:
        orgs = handle.accounts.list_organizations()
    data = [{"name": o.name, "email": o.email, "enabled": o.enabled} for o in orgs]
    rows = [(o.name, o.email or "", _yes(o.enabled)) for o in orgs]
    _emit(output, data, _table(rows, ("NAME", "EMAIL", "ENABLED")))


@team_app.command("create")
def team_create(
    org: str,
    name: str,
    role: Annotated[
        TeamRoleChoice,
        typer.Option(help="member: its grants; creator: also creates repositories; admin: all."),
    ] = TeamRoleChoice.MEMBER,
    description: Annotated[str, typer.Option(help="What the team is.")] = "",
    output: OutputOption = Output.TEXT,
    config: ConfigOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Create a team in an organization."""
    from moorage.domain.access import TeamRole

    with _accounts(config, database_url) as handle:
        team = handle.accounts.create_team(org, name, TeamRole(role.value), description)
    _emit(output, team, f"created team {org}/{name} ({team.role.value})")


@team_app.command("set-role")
def team_set_role(
    org: str,
    name: str,
    role: Annotated[TeamRoleChoice, typer.Argument(help="member, creator or admin.")],
    config: ConfigOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Change a team's role in its organization."""
    from moorage.domain.access import TeamRole

    with _accounts(config, database_url) as handle:
        handle.accounts.set_team_role(org, name, TeamRole(role.value))
    typer.echo(f"team {org}/{name} is now {role.value}")


@team_app.command("add-member")
def team_add_member(
    org: str,
    team: str,
    member: Annotated[str, typer.Argument(help="A user, or a robot of the organization.")],
    config: ConfigOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Add a user or robot to a team."""
    with _accounts(config, database_url) as handle:
        added = handle.accounts.add_team_member(org, team, member)
    typer.echo(f"added {member} to {org}/{team}" if added else f"{member} was in {org}/{team}")


@team_app.command("remove-member")
def team_remove_member(
    org: str,
    team: str,
    member: str,
    config: ConfigOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Remove a user or robot from a team."""
    with _accounts(config, database_url) as handle:
        handle.accounts.remove_team_member(org, team, member)
    typer.echo(f"removed {member} from {org}/{team}")


@team_app.command("list")
def team_list(
    org: str,
    output: OutputOption = Output.TEXT,
    config: ConfigOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """List an organization's teams, their roles and members."""
    with _accounts(config, database_url, read_only=True) as handle:
        teams = [
            (team, handle.accounts.list_team_members(org, team.name))
            for team in handle.accounts.list_teams(org)
        ]
    data = [
        {**_plain(team), "members": [member.name for member in members]} for team, members in teams
    ]
    rows = [
        (team.name, team.role.value, ", ".join(member.name for member in members))
        for team, members in teams
    ]
    _emit(output, data, _table(rows, ("TEAM", "ROLE", "MEMBERS")))


# -- robots ------------------------------------------------------------------------------


@robot_app.command("create")
def robot_create(
    namespace: Annotated[str, typer.Argument(help="The organization or user owning it.")],
    name: Annotated[str, typer.Argument(help="Its short name: it logs in as namespace+name.")],
    description: Annotated[str, typer.Option(help="What it is for.")] = "",
    output: OutputOption = Output.TEXT,
    config: ConfigOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Create a robot account; prints its secret, this once only."""
    with _accounts(config, database_url) as handle:
        robot, secret = handle.accounts.create_robot(namespace, name, description)
    _print_robot_secret(output, robot.name, secret)


def _print_robot_secret(output: Output, name: str, secret: str) -> None:
    if output is Output.JSON:
        typer.echo(json.dumps({"name": name, "secret": secret}, indent=2))
        return
    typer.echo(f"name:   {name}\nsecret: {secret}")
    typer.echo("store the secret now: it is not shown again", err=True)


@robot_app.command("list")
def robot_list(
    namespace: str,
    output: OutputOption = Output.TEXT,
    config: ConfigOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """List a namespace's robots (never their secrets)."""
    with _accounts(config, database_url, read_only=True) as handle:
        robots = handle.accounts.list_robots(namespace)
    data = [{**_plain(r), "name": r.name} for r in robots]
    rows = [(r.name, r.description, r.created.isoformat(timespec="seconds")) for r in robots]
    _emit(output, data, _table(rows, ("NAME", "DESCRIPTION", "CREATED")))


@robot_app.command("delete")
def robot_delete(
    name: Annotated[str, typer.Argument(help="namespace+name")],
    config: ConfigOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Delete a robot with its team memberships and permissions."""
    with _accounts(config, database_url) as handle:
        handle.accounts.delete_robot(name)
    typer.echo(f"deleted robot {name}")


@robot_app.command("regenerate")
def robot_regenerate(
    name: Annotated[str, typer.Argument(help="namespace+name")],
    output: OutputOption = Output.TEXT,
    config: ConfigOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Give a robot a new secret (the old one stops working at once); prints it once."""
    with _accounts(config, database_url) as handle:
        secret = handle.accounts.regenerate_robot_secret(name)
    _print_robot_secret(output, name, secret)


# -- repositories and namespaces ---------------------------------------------------------


@repo_app.command("visibility")
def repo_visibility(
    repository: Annotated[str, typer.Argument(help="namespace/name")],
    visibility: Annotated[VisibilityChoice, typer.Argument(help="public or private.")],
    config: ConfigOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Make a repository public (anyone may pull it) or private."""
    from moorage.domain.records import Visibility

    with _accounts(config, database_url) as handle:
        handle.accounts.set_visibility(repository, Visibility(visibility.value))
    typer.echo(f"{repository} is {visibility.value}")


def _subject(user: str | None, team: str | None, robot: str | None) -> tuple[SubjectKind, str]:
    from moorage.domain.accounts import SubjectKind

    given = [
        (kind, name)
        for kind, name in (
            (SubjectKind.USER, user),
            (SubjectKind.TEAM, team),
            (SubjectKind.ROBOT, robot),
        )
        if name is not None
    ]
    if len(given) != 1:
        raise typer.BadParameter("give exactly one of --user, --team, --robot")
    return given[0]


UserOption = Annotated[str | None, typer.Option("--user", help="A user.")]
TeamOption = Annotated[
    str | None, typer.Option("--team", help="A team of the repository's organization.")
]
RobotOption = Annotated[
    str | None, typer.Option("--robot", help="A robot of the repository's namespace.")
]


@repo_app.command("grant")
def repo_grant(
    repository: Annotated[str, typer.Argument(help="namespace/name")],
    role: Annotated[
        RoleChoice, typer.Option(help="read: pull; write: also push and delete; admin: all.")
    ],
    user: UserOption = None,
    team: TeamOption = None,
    robot: RobotOption = None,
    config: ConfigOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Grant a role on a repository to one user, team or robot (replacing its role)."""
    from moorage.domain.access import Role

    kind, name = _subject(user, team, robot)
    with _accounts(config, database_url) as handle:
        handle.accounts.grant(repository, kind, name, Role(role.value))
    typer.echo(f"granted {role.value} on {repository} to {kind.value} {name}")


@repo_app.command("revoke")
def repo_revoke(
    repository: Annotated[str, typer.Argument(help="namespace/name")],
    user: UserOption = None,
    team: TeamOption = None,
    robot: RobotOption = None,
    config: ConfigOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Revoke what a user, team or robot was granted on a repository."""
    kind, name = _subject(user, team, robot)
    with _accounts(config, database_url) as handle:
        handle.accounts.revoke(repository, kind, name)
    typer.echo(f"revoked the role of {kind.value} {name} on {repository}")


@repo_app.command("permissions")
def repo_permissions(
    repository: Annotated[str, typer.Argument(help="namespace/name")],
    output: OutputOption = Output.TEXT,
    config: ConfigOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """List who was granted what on a repository."""
    with _accounts(config, database_url, read_only=True) as handle:
        granted = handle.accounts.list_permissions(repository)
    rows = [(p.kind.value, p.name, p.role.value) for p in granted]
    _emit(output, granted, _table(rows, ("KIND", "NAME", "ROLE")))


@namespace_app.command("disable")
def namespace_disable(
    name: str, config: ConfigOption = None, database_url: DatabaseUrlOption = None
) -> None:
    """Refuse every pull and push in a namespace (403 DENIED); nothing is deleted."""
    with _accounts(config, database_url) as handle:
        handle.accounts.set_namespace_enabled(name, False)
    typer.echo(f"disabled namespace {name}")


@namespace_app.command("enable")
def namespace_enable(
    name: str, config: ConfigOption = None, database_url: DatabaseUrlOption = None
) -> None:
    """Serve a disabled namespace again."""
    with _accounts(config, database_url) as handle:
        handle.accounts.set_namespace_enabled(name, True)
    typer.echo(f"enabled namespace {name}")


GROUPS = (
    ("user", user_app),
    ("org", org_app),
    ("team", team_app),
    ("robot", robot_app),
    ("repo", repo_app),
    ("namespace", namespace_app),
)
