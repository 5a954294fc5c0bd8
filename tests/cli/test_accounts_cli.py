"""The account commands as an operator runs them: real ``moorage`` subprocesses over a real
database; exit 0 done, 1 refused (one line on stderr), 2 bad usage; secrets shown once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from moorage.config import load_settings
from moorage.db.engine import Database, create_database_engine
from moorage.model.sql import SqlRegistryModel
from moorage.services.accounts import AccountService
from support.cli import clean_env, moorage

PASSWORD = "correct horse battery"


def run(
    data_dir: Path, *args: str, stdin: str | None = None, database_url: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {"MOORAGE_DATA_DIR": str(data_dir)}
    if database_url is not None:
        env["MOORAGE_DATABASE_URL"] = database_url
        env["MOORAGE_AUTO_MIGRATE"] = "true"
    if stdin is None:
        return moorage(*args, env=env)
    return subprocess.run(
        [sys.executable, "-m", "moorage", *args],
        env=clean_env(env),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def service(data_dir: Path) -> AccountService:
    """The same database, read directly: what the commands really did."""
    settings = load_settings(None, data_dir=data_dir)
    engine = create_database_engine(settings.database_url)
    return AccountService(SqlRegistryModel(Database(engine)))


def test_users_from_creation_to_login(tmp_path: Path) -> None:
    created = run(
        tmp_path, "user", "create", "alice", "--password-stdin", "-o", "json", stdin=PASSWORD
    )
    assert created.returncode == 0, created.stderr
    record = json.loads(created.stdout)
    assert (record["name"], record["enabled"], record["superuser"]) == ("alice", True, False)
    assert "password_hash" not in record and PASSWORD not in created.stdout + created.stderr

    accounts = service(tmp_path)
    assert accounts.authenticate("alice", PASSWORD) is not None

    again = run(tmp_path, "user", "create", "alice", "--password-stdin", stdin=PASSWORD)
    assert again.returncode == 1
    assert again.stderr.strip() == "error: namespace 'alice' already exists"

    disabled = run(tmp_path, "user", "disable", "alice")
    assert disabled.returncode == 0, disabled.stderr
    assert accounts.authenticate("alice", PASSWORD) is None
    assert run(tmp_path, "user", "enable", "alice").returncode == 0
    assert accounts.authenticate("alice", PASSWORD) is not None

    changed = run(tmp_path, "user", "set-password", "alice", "--password", "a new passphrase")
    assert changed.returncode == 0, changed.stderr
    assert "warning" in changed.stderr  # a password on the command line is visible to others
    assert accounts.authenticate("alice", "a new passphrase") is not None

    listed = run(tmp_path, "user", "list", "-o", "json")
    assert [u["name"] for u in json.loads(listed.stdout)] == ["alice"]
    assert "$argon2" not in listed.stdout

    missing = run(tmp_path, "user", "disable", "nobody")
    assert (missing.returncode, missing.stderr.strip()) == (1, "error: no such user: 'nobody'")


def test_passwords_are_never_taken_silently(tmp_path: Path) -> None:
    no_terminal = run(tmp_path, "user", "create", "alice", stdin="")
    assert no_terminal.returncode == 2
    assert "--password-stdin" in no_terminal.stderr
    short = run(tmp_path, "user", "create", "alice", "--password-stdin", stdin="short\n")
    assert short.returncode == 1
    assert "at least 8" in short.stderr and "short\n" not in short.stderr
    assert run(tmp_path, "user", "list").stdout.strip() == "(none)"  # nothing was created


def test_organizations_teams_robots_and_grants(tmp_path: Path) -> None:
    assert run(tmp_path, "user", "create", "carol", "--no-password").returncode == 0
    assert run(tmp_path, "user", "create", "dave", "--no-password").returncode == 0
    org = run(tmp_path, "org", "create", "acme", "--admin", "carol")
    assert org.returncode == 0, org.stderr
    assert json.loads(run(tmp_path, "org", "list", "-o", "json").stdout)[0]["name"] == "acme"
    team = run(tmp_path, "team", "create", "acme", "devs", "--role", "creator")
    assert team.returncode == 0, team.stderr
    assert run(tmp_path, "team", "add-member", "acme", "devs", "dave").returncode == 0
    teams = json.loads(run(tmp_path, "team", "list", "acme", "-o", "json").stdout)
    assert {t["name"]: (t["role"], t["members"]) for t in teams} == {
        "devs": ("creator", ["dave"]),
        "owners": ("admin", ["carol"]),
    }
    bad_role = run(tmp_path, "team", "create", "acme", "ops", "--role", "boss")
    assert bad_role.returncode == 2

    robot = run(tmp_path, "robot", "create", "acme", "ci", "-o", "json")
    assert robot.returncode == 0, robot.stderr
    shown = json.loads(robot.stdout)
    assert shown["name"] == "acme+ci"
    accounts = service(tmp_path)
    assert accounts.authenticate("acme+ci", shown["secret"]) is not None
    listed = run(tmp_path, "robot", "list", "acme", "-o", "json")
    assert shown["secret"] not in listed.stdout  # shown once, never again
    assert [r["name"] for r in json.loads(listed.stdout)] == ["acme+ci"]

    accounts.model.create_repository("acme", "app")
    grant = run(tmp_path, "repo", "grant", "acme/app", "--robot", "acme+ci", "--role", "write")
    assert grant.returncode == 0, grant.stderr
    assert (
        run(tmp_path, "repo", "grant", "acme/app", "--team", "devs", "--role", "read").returncode
        == 0
    )
    both = run(
        tmp_path, "repo", "grant", "acme/app", "--user", "x", "--team", "y", "--role", "read"
    )
    assert both.returncode == 2
    unknown = run(tmp_path, "repo", "grant", "acme/nope", "--user", "dave", "--role", "read")
    assert unknown.returncode == 1 and "no such repository" in unknown.stderr
    permissions = json.loads(run(tmp_path, "repo", "permissions", "acme/app", "-o", "json").stdout)
    assert {(p["kind"], p["name"], p["role"]) for p in permissions} == {
        ("robot", "acme+ci", "write"),
        ("team", "devs", "read"),
    }
    assert run(tmp_path, "repo", "revoke", "acme/app", "--team", "devs").returncode == 0
    assert run(tmp_path, "repo", "revoke", "acme/app", "--team", "devs").returncode == 1

    assert run(tmp_path, "repo", "visibility", "acme/app", "public").returncode == 0
    found = accounts.model.lookup_repository("acme", "app")
    assert found is not None and found.is_public

    assert run(tmp_path, "namespace", "disable", "acme").returncode == 0
    assert not accounts.model.is_namespace_enabled("acme")
    assert accounts.authenticate("acme+ci", shown["secret"]) is None
    assert run(tmp_path, "namespace", "enable", "acme").returncode == 0
    assert accounts.model.is_namespace_enabled("acme")

    deleted = run(tmp_path, "robot", "delete", "acme+ci")
    assert deleted.returncode == 0, deleted.stderr
    assert accounts.authenticate("acme+ci", shown["secret"]) is None
    assert run(tmp_path, "robot", "delete", "acme+ci").returncode == 1


def test_application_tokens(tmp_path: Path) -> None:
    assert run(tmp_path, "user", "create", "alice", "--no-password").returncode == 0
    created = run(tmp_path, "user", "token", "create", "alice", "--title", "laptop")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    accounts = service(tmp_path)
    assert accounts.authenticate("alice", token) is not None
    listed = json.loads(run(tmp_path, "user", "token", "list", "alice", "-o", "json").stdout)
    assert [t["title"] for t in listed] == ["laptop"] and token not in json.dumps(listed)
    revoked = run(tmp_path, "user", "token", "revoke", "alice", listed[0]["uuid"])
    assert revoked.returncode == 0, revoked.stderr
    assert accounts.authenticate("alice", token) is None


@pytest.mark.parametrize(
    "command",
    [
        ("user",),
        ("user", "create"),
        ("user", "token"),
        ("org", "create"),
        ("team", "add-member"),
        ("robot", "create"),
        ("repo", "grant"),
        ("namespace", "disable"),
    ],
)
def test_every_command_has_help(tmp_path: Path, command: tuple[str, ...]) -> None:
    shown = run(tmp_path, *command, "--help")
    assert shown.returncode == 0, shown.stderr
    assert "Usage" in shown.stdout
    assert not (tmp_path / "moorage.db").exists()  # asking for help creates nothing


@pytest.mark.postgres
def test_on_postgresql(tmp_path: Path, fresh_postgres_url: str) -> None:
    created = run(
        tmp_path,
        "user",
        "create",
        "root",
        "--superuser",
        "--password-stdin",
        stdin=PASSWORD + "\n",
        database_url=fresh_postgres_url,
    )
    assert created.returncode == 0, created.stderr
    listed = run(tmp_path, "user", "list", "-o", "json", database_url=fresh_postgres_url)
    assert json.loads(listed.stdout)[0]["superuser"] is True
