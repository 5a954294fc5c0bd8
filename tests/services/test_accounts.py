"""AccountService over a real model, on SQLite and PostgreSQL: logins by password, robot
secret and application token; accounts, teams, robots and grants; the first superuser."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy import select, update

from moorage.app import build
from moorage.config import load_settings
from moorage.db import tables as t
from moorage.db.engine import Database, create_database_engine
from moorage.db.migrate import upgrade
from moorage.domain.access import ANONYMOUS, CATALOG_SCOPE, Principal, PrincipalKind, Role, TeamRole
from moorage.domain.accounts import SubjectKind, TeamMember
from moorage.domain.errors import ConfigError, DataModelError, RepositoryNotFoundError
from moorage.domain.records import NamespaceKind, Visibility
from moorage.model.sql import SqlRegistryModel
from moorage.services.accounts import (
    APP_TOKEN_PREFIX,
    AccountService,
    InvalidPasswordError,
    UnknownAccountError,
)
from moorage.services.auth_contracts import Authenticator, Authorizer, PrincipalDirectory
from moorage.services.permissions import PermissionService

PASSWORD = "correct horse battery"


@pytest.fixture(params=["sqlite", "postgres"])
def model(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlRegistryModel]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/accounts.db"
    else:
        url = request.getfixturevalue("fresh_postgres_url")
    upgrade(url)
    engine = create_database_engine(url)
    yield SqlRegistryModel(Database(engine))
    engine.dispose()


@pytest.fixture
def accounts(model: SqlRegistryModel) -> AccountService:
    return AccountService(model)


def test_password_login(accounts: AccountService) -> None:
    created = accounts.create_user("alice", PASSWORD, email="alice@example.com")
    stored = accounts.get_user("alice").password_hash
    assert stored is not None and stored.startswith("$argon2id$")
    assert PASSWORD not in stored
    principal = accounts.authenticate("alice", PASSWORD)
    assert principal is not None
    assert (principal.kind, principal.name, principal.id) == (
        PrincipalKind.USER,
        "alice",
        created.id,
    )
    assert not principal.superuser
    assert accounts.authenticate("alice", "wrong password") is None
    assert accounts.authenticate("nobody", PASSWORD) is None
    assert accounts.authenticate("alice", "") is None
    assert accounts.authenticate("", PASSWORD) is None
    assert accounts.authenticate("alice", PASSWORD + "x" * 2000) is None


def test_disabled_users_cannot_log_in(accounts: AccountService) -> None:
    accounts.create_user("alice", PASSWORD)
    accounts.set_user_enabled("alice", False)
    assert accounts.authenticate("alice", PASSWORD) is None
    accounts.set_user_enabled("alice", True)
    assert accounts.authenticate("alice", PASSWORD) is not None
    with pytest.raises(UnknownAccountError, match=r"no such user: .nobody."):
        accounts.set_user_enabled("nobody", False)


def test_set_password(accounts: AccountService) -> None:
    accounts.create_user("alice", PASSWORD)
    accounts.set_password("alice", "another passphrase")
    assert accounts.authenticate("alice", PASSWORD) is None
    assert accounts.authenticate("alice", "another passphrase") is not None


@pytest.mark.parametrize("bad", ["short", "x" * 1025, APP_TOKEN_PREFIX + "looks like a token"])
def test_password_rules_never_echo_the_password(accounts: AccountService, bad: str) -> None:
    with pytest.raises(InvalidPasswordError) as caught:
        accounts.create_user("alice", bad)
    assert bad not in str(caught.value)
    assert accounts.model.lookup_user("alice") is None


def test_hashes_of_older_parameters_are_upgraded_at_login(model: SqlRegistryModel) -> None:
    old = AccountService(
        model,
        password_hasher=PasswordHash((Argon2Hasher(time_cost=1, memory_cost=8192),)),
    )
    old.create_user("alice", PASSWORD)
    before = old.get_user("alice").password_hash
    assert before is not None and "m=8192" in before
    current = AccountService(model)
    assert current.authenticate("alice", PASSWORD) is not None
    after = current.get_user("alice").password_hash
    assert after is not None and "m=19456" in after
    assert current.authenticate("alice", PASSWORD) is not None


def test_a_damaged_stored_hash_is_a_failed_login(accounts: AccountService) -> None:
    accounts.create_user("alice", PASSWORD)
    accounts.model.set_user_password_hash("alice", "not a hash")
    assert accounts.authenticate("alice", PASSWORD) is None


def test_superusers(accounts: AccountService) -> None:
    accounts.create_user("root", PASSWORD, superuser=True)
    principal = accounts.authenticate("root", PASSWORD)
    assert principal is not None and principal.superuser
    accounts.set_superuser("root", False)
    principal = accounts.authenticate("root", PASSWORD)
    assert principal is not None and not principal.superuser


def test_robots(accounts: AccountService, model: SqlRegistryModel) -> None:
    accounts.create_organization("acme")
    robot, secret = accounts.create_robot("acme", "ci", "builds")
    assert robot.name == "acme+ci" and len(secret) >= 43
    principal = accounts.authenticate("acme+ci", secret)
    assert principal is not None
    assert (principal.kind, principal.name) == (PrincipalKind.ROBOT, "acme+ci")
    assert accounts.authenticate("acme+ci", secret[:-1]) is None
    assert accounts.authenticate("acme+other", secret) is None
    assert accounts.authenticate("rival+ci", secret) is None
    # Stored as a keyed hash, never in clear.
    with model.database.read() as conn:
        stored = conn.execute(select(t.robot.c.secret_hash)).scalar_one()
    assert secret.encode() not in bytes(stored) and len(stored) == 32
    listed = accounts.list_robots("acme")
    assert [r.name for r in listed] == ["acme+ci"] and listed[0].secret_hash == b""

    new_secret = accounts.regenerate_robot_secret("acme+ci")
    assert accounts.authenticate("acme+ci", secret) is None
    assert accounts.authenticate("acme+ci", new_secret) is not None

    accounts.set_namespace_enabled("acme", False)
    assert accounts.authenticate("acme+ci", new_secret) is None
    accounts.set_namespace_enabled("acme", True)

    accounts.delete_robot("acme+ci")
    assert accounts.authenticate("acme+ci", new_secret) is None
    with pytest.raises(UnknownAccountError):
        accounts.delete_robot("acme+ci")
    with pytest.raises(UnknownAccountError, match="no such namespace"):
        accounts.create_robot("nowhere", "ci")


def test_a_robot_secret_works_on_every_instance(model: SqlRegistryModel) -> None:
    """The HMAC key lives in the database: another worker checks the same secret."""
    first = AccountService(model)
    first.create_user("alice", None)
    _, secret = first.create_robot("alice", "bot")
    other = AccountService(SqlRegistryModel(Database(model.database.engine)))
    assert other.authenticate("alice+bot", secret) is not None


def test_application_tokens(accounts: AccountService, model: SqlRegistryModel) -> None:
    accounts.create_user("alice", PASSWORD)
    accounts.create_user("bob", PASSWORD)
    token, secret = accounts.create_app_token("alice", "laptop")
    assert secret.startswith(APP_TOKEN_PREFIX)
    by_name = accounts.authenticate("alice", secret)
    assert by_name is not None and by_name.name == "alice"
    by_app = accounts.authenticate("$app", secret)
    assert by_app is not None and by_app.name == "alice"
    assert accounts.authenticate("bob", secret) is None  # someone else's token
    assert accounts.authenticate("alice", secret + "x") is None
    assert [t.title for t in accounts.list_app_tokens("alice")] == ["laptop"]

    accounts.set_user_enabled("alice", False)
    assert accounts.authenticate("alice", secret) is None
    accounts.set_user_enabled("alice", True)

    accounts.revoke_app_token("alice", token.uuid)
    assert accounts.authenticate("alice", secret) is None
    with pytest.raises(UnknownAccountError):
        accounts.revoke_app_token("alice", token.uuid)


def test_expired_application_tokens(accounts: AccountService, model: SqlRegistryModel) -> None:
    accounts.create_user("alice", None)
    token, secret = accounts.create_app_token("alice", "ci", expires_in_s=3600)
    assert accounts.authenticate("alice", secret) is not None
    with model.database.write() as conn:
        conn.execute(
            update(t.app_token)
            .where(t.app_token.c.uuid == token.uuid)
            .values(expires=datetime.now(UTC) - timedelta(seconds=1))
        )
    assert accounts.authenticate("alice", secret) is None


def test_organizations_and_teams(accounts: AccountService) -> None:
    accounts.create_user("carol", PASSWORD)
    accounts.create_user("dave", None)
    org = accounts.create_organization("acme", admin="carol")
    assert org.kind is NamespaceKind.ORGANIZATION
    assert [o.name for o in accounts.list_organizations()] == ["acme"]
    owners = accounts.get_team("acme", "owners")
    assert owners.role is TeamRole.ADMIN
    assert accounts.list_team_members("acme", "owners") == [TeamMember(SubjectKind.USER, "carol")]
    with pytest.raises(DataModelError, match="already exists"):
        accounts.create_organization("acme")
    with pytest.raises(UnknownAccountError, match="no such user"):
        accounts.create_organization("corp", admin="nobody")
    assert accounts.model.get_namespace("corp") is None  # nothing half-made

    accounts.create_team("acme", "devs", TeamRole.CREATOR)
    assert accounts.add_team_member("acme", "devs", "dave")
    assert not accounts.add_team_member("acme", "devs", "dave")
    accounts.create_robot("acme", "ci")
    accounts.add_team_member("acme", "devs", "acme+ci")
    accounts.create_organization("rival")
    accounts.create_robot("rival", "ci")
    with pytest.raises(DataModelError, match="another namespace"):
        accounts.add_team_member("acme", "devs", "rival+ci")
    assert [m.name for m in accounts.list_team_members("acme", "devs")] == ["dave", "acme+ci"]
    accounts.remove_team_member("acme", "devs", "dave")
    with pytest.raises(UnknownAccountError, match="not a member"):
        accounts.remove_team_member("acme", "devs", "dave")
    accounts.set_team_role("acme", "devs", TeamRole.MEMBER)
    assert accounts.get_team("acme", "devs").role is TeamRole.MEMBER
    with pytest.raises(UnknownAccountError, match="no such organization"):
        accounts.create_team("carol", "devs")  # a user has no teams
    with pytest.raises(UnknownAccountError, match="no such team"):
        accounts.add_team_member("acme", "nope", "dave")


def test_grants_visibility_and_namespaces(
    accounts: AccountService, model: SqlRegistryModel
) -> None:
    accounts.create_user("dave", None)
    accounts.create_organization("acme")
    accounts.create_organization("rival")
    accounts.create_team("acme", "devs")
    accounts.create_robot("acme", "ci")
    accounts.create_robot("rival", "ci")
    assert model.create_repository("acme", "app") is not None
    accounts.grant("acme/app", SubjectKind.USER, "dave", Role.READ)
    accounts.grant("acme/app", SubjectKind.USER, "dave", Role.WRITE)
    accounts.grant("acme/app", SubjectKind.TEAM, "devs", Role.ADMIN)
    accounts.grant("acme/app", SubjectKind.ROBOT, "acme+ci", Role.READ)
    with pytest.raises(DataModelError, match="another namespace"):
        accounts.grant("acme/app", SubjectKind.ROBOT, "rival+ci", Role.READ)
    with pytest.raises(RepositoryNotFoundError):
        accounts.grant("acme/missing", SubjectKind.USER, "dave", Role.READ)
    assert model.lookup_repository("acme", "missing") is None  # a grant creates nothing
    with pytest.raises(UnknownAccountError):
        accounts.grant("acme/app", SubjectKind.USER, "nobody", Role.READ)
    assert {(p.kind, p.name, p.role) for p in accounts.list_permissions("acme/app")} == {
        (SubjectKind.USER, "dave", Role.WRITE),
        (SubjectKind.TEAM, "devs", Role.ADMIN),
        (SubjectKind.ROBOT, "acme+ci", Role.READ),
    }
    accounts.revoke("acme/app", SubjectKind.TEAM, "devs")
    with pytest.raises(UnknownAccountError, match="has no role"):
        accounts.revoke("acme/app", SubjectKind.TEAM, "devs")

    found = model.lookup_repository("acme", "app")
    assert found is not None and not found.is_public
    accounts.set_visibility("acme/app", Visibility.PUBLIC)
    found = model.lookup_repository("acme", "app")
    assert found is not None and found.is_public

    accounts.set_namespace_enabled("acme", False)
    assert not model.is_namespace_enabled("acme")
    found = model.lookup_repository("acme", "app")
    assert found is not None  # nothing deleted
    accounts.set_namespace_enabled("acme", True)
    assert model.is_namespace_enabled("acme")
    with pytest.raises(UnknownAccountError):
        accounts.set_namespace_enabled("nowhere", False)


def test_initial_superuser_is_created_once(accounts: AccountService) -> None:
    assert accounts.ensure_initial_superuser("root", PASSWORD)
    assert not accounts.ensure_initial_superuser("root", "a different password")
    principal = accounts.authenticate("root", PASSWORD)
    assert principal is not None and principal.superuser
    assert accounts.authenticate("root", "a different password") is None


def test_build_creates_the_initial_superuser(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MOORAGE_INITIAL_SUPERUSER", "root")
    monkeypatch.setenv("MOORAGE_INITIAL_SUPERUSER_PASSWORD", PASSWORD)
    settings = load_settings(None, data_dir=tmp_path)
    app = build(settings)
    try:
        principal = app.accounts.authenticate("root", PASSWORD)
        assert principal is not None and principal.superuser
    finally:
        app.close()
    # Again, with another password: the user stays as it was.
    monkeypatch.setenv("MOORAGE_INITIAL_SUPERUSER_PASSWORD", "changed in the environment")
    app = build(load_settings(None, data_dir=tmp_path))
    try:
        assert app.accounts.authenticate("root", PASSWORD) is not None
        assert [u.name for u in app.accounts.list_users()] == ["root"]
    finally:
        app.close()


def test_initial_superuser_password_from_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret_file = tmp_path / "password"
    secret_file.write_text(PASSWORD + "\n")
    monkeypatch.setenv("MOORAGE_INITIAL_SUPERUSER", "root")
    monkeypatch.setenv("MOORAGE_INITIAL_SUPERUSER_PASSWORD_FILE", str(secret_file))
    app = build(load_settings(None, data_dir=tmp_path / "data"))
    try:
        assert app.accounts.authenticate("root", PASSWORD) is not None
    finally:
        app.close()


def test_initial_superuser_without_a_password_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MOORAGE_INITIAL_SUPERUSER", "root")
    with pytest.raises(ConfigError, match="initial_superuser_password"):
        build(load_settings(None, data_dir=tmp_path))


def test_secrets_never_reach_the_logs(
    accounts: AccountService, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    accounts.create_user("alice", PASSWORD)
    accounts.set_password("alice", PASSWORD + "2")
    accounts.authenticate("alice", "a wrong guess 123")
    accounts.create_organization("acme")
    _, robot_secret = accounts.create_robot("acme", "ci")
    accounts.authenticate("acme+ci", robot_secret)
    _, token = accounts.create_app_token("alice", "laptop")
    accounts.authenticate("alice", token)
    captured = capsys.readouterr()
    everything = captured.out + captured.err + caplog.text
    assert "user created" in everything or "robot created" in everything or everything == ""
    for secret in (PASSWORD, "a wrong guess 123", robot_secret, token):
        assert secret not in everything


NAMES = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["alice", "acme+ci", "$app", "alice\x00", "acme+ci\x00", "acme+", "+ci"]),
    st.builds(lambda a, b: f"{a}+{b}", st.text(max_size=10), st.text(max_size=10)),
)
SECRETS = st.one_of(
    st.text(max_size=60),
    st.builds(lambda s: APP_TOKEN_PREFIX + s, st.text(max_size=50)),
    st.sampled_from(["", "\x00", PASSWORD + "\x00"]),
)


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(username=NAMES, secret=SECRETS)
def test_any_credentials_are_a_clean_refusal(
    accounts: AccountService, username: str, secret: str
) -> None:
    """Whatever a client sends as Basic credentials (NULs, lone ``+``, huge or empty values),
    the answer is None, never a database error (PostgreSQL refuses NUL in text)."""
    if accounts.model.lookup_user("alice") is None:
        accounts.create_user("alice", PASSWORD)
        accounts.create_organization("acme")
        accounts.create_robot("acme", "ci")
    assert accounts.authenticate(username, secret) is None


def test_current_reads_the_account_as_it_stands_now(accounts: AccountService) -> None:
    """What the token service asks when a refresh token is redeemed."""
    accounts.create_user("alice", None)
    accounts.create_organization("acme")
    robot, _ = accounts.create_robot("acme", "ci")
    alice = Principal(PrincipalKind.USER, "alice")
    bot = Principal(PrincipalKind.ROBOT, "acme+ci")
    now = accounts.current(alice)
    assert now is not None and not now.superuser and now.id is not None
    accounts.set_superuser("alice", True)
    now = accounts.current(alice)
    assert now is not None and now.superuser
    accounts.set_user_enabled("alice", False)
    assert accounts.current(alice) is None
    assert accounts.current(bot) == Principal(PrincipalKind.ROBOT, "acme+ci", robot.id)
    accounts.set_namespace_enabled("acme", False)
    assert accounts.current(bot) is None
    accounts.set_namespace_enabled("acme", True)
    accounts.delete_robot("acme+ci")
    assert accounts.current(bot) is None
    assert accounts.current(ANONYMOUS) == ANONYMOUS
    assert accounts.current(Principal(PrincipalKind.USER, "ghost")) is None
    assert accounts.current(Principal(PrincipalKind.USER, "al\x00ice")) is None
    assert accounts.current(Principal(PrincipalKind.ROBOT, "acme+\x00")) is None


def test_the_services_are_the_auth_contracts(model: SqlRegistryModel) -> None:
    """Checked by mypy too: the token service and the access seam see only these protocols."""
    authenticator: Authenticator = AccountService(model)
    directory: PrincipalDirectory = AccountService(model)
    authorizer: Authorizer = PermissionService(model)
    assert authenticator.authenticate("nobody", PASSWORD) is None
    assert directory.current(Principal(PrincipalKind.USER, "nobody")) is None
    assert authorizer.permitted(ANONYMOUS, CATALOG_SCOPE) == frozenset()
