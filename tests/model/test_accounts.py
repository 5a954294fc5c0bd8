"""The accounts and permissions model, on SQLite and PostgreSQL."""

from __future__ import annotations

import inspect
import threading

import pytest

from moorage.db.engine import Database
from moorage.domain.access import Principal, PrincipalKind, Role, TeamRole
from moorage.domain.accounts import Subject, SubjectKind, TeamMember
from moorage.domain.errors import DataModelError, InvalidNameError
from moorage.domain.records import NamespaceKind, RepositoryReference, Visibility
from moorage.model.interface import AccountsAndPermissions
from moorage.model.sql import SqlRegistryModel


def user(name: str) -> Principal:
    return Principal(PrincipalKind.USER, name)


def robot(name: str) -> Principal:
    return Principal(PrincipalKind.ROBOT, name)


def make_repo(model: SqlRegistryModel, namespace: str, name: str) -> RepositoryReference:
    created = model.create_repository(namespace, name)
    assert created is not None
    return created


def test_a_user_is_a_namespace_with_credentials(model: SqlRegistryModel) -> None:
    created = model.create_user("alice", "$argon2id$fake", email="a@example.com")
    assert (created.name, created.email, created.enabled, created.superuser) == (
        "alice",
        "a@example.com",
        True,
        False,
    )
    assert "argon2" not in repr(created)  # hashes stay out of logs
    namespace = model.get_namespace("alice")
    assert namespace is not None
    assert namespace.kind is NamespaceKind.USER and namespace.id == created.id
    found = model.lookup_user("alice")
    assert found is not None and found.password_hash == "$argon2id$fake"
    assert model.lookup_user("nobody") is None


def test_user_names_and_emails_are_unique_and_valid(model: SqlRegistryModel) -> None:
    model.create_user("alice", None, email="a@example.com")
    with pytest.raises(DataModelError, match="already exists"):
        model.create_user("alice", None)
    with pytest.raises(DataModelError, match="e-mail"):
        model.create_user("bob", None, email="a@example.com")
    assert model.lookup_user("bob") is None  # nothing half-created
    assert model.get_namespace("bob") is None
    with pytest.raises(InvalidNameError):
        model.create_user("Not/Valid", None)
    model.create_namespace("acme", NamespaceKind.ORGANIZATION)
    with pytest.raises(DataModelError):
        model.create_user("acme", None)
    assert model.lookup_user("acme") is None  # an organization is no user


def test_user_updates(model: SqlRegistryModel) -> None:
    model.create_user("bob", "h1")
    model.create_user("alice", "h2")
    assert model.set_user_password_hash("bob", "h3")
    assert model.set_user_enabled("bob", False)
    assert model.set_user_superuser("alice", True)
    assert not model.set_user_enabled("nobody", False)
    by_name = {u.name: u for u in model.list_users()}
    assert [u.name for u in model.list_users()] == ["alice", "bob"]
    assert by_name["bob"].password_hash == "h3" and not by_name["bob"].enabled
    assert by_name["alice"].superuser


def test_teams_and_members(model: SqlRegistryModel) -> None:
    model.create_namespace("acme", NamespaceKind.ORGANIZATION)
    model.create_user("alice", None)
    devs = model.create_team("acme", "devs", TeamRole.MEMBER, "developers")
    model.create_team("acme", "admins", TeamRole.ADMIN)
    with pytest.raises(DataModelError, match="already exists"):
        model.create_team("acme", "devs", TeamRole.ADMIN)
    with pytest.raises(DataModelError, match="no organization"):
        model.create_team("alice", "devs", TeamRole.ADMIN)  # users have no teams
    assert [team.name for team in model.list_teams("acme")] == ["admins", "devs"]
    assert model.lookup_team("acme", "devs") == devs
    bot = model.create_robot("acme", "ci", b"x" * 32)
    alice = model.lookup_user("alice")
    assert alice is not None
    assert model.add_team_member(devs, Subject(SubjectKind.USER, alice.id))
    assert not model.add_team_member(devs, Subject(SubjectKind.USER, alice.id))
    assert model.add_team_member(devs, Subject(SubjectKind.ROBOT, bot.id))
    assert model.list_team_members(devs) == [
        TeamMember(SubjectKind.USER, "alice"),
        TeamMember(SubjectKind.ROBOT, "acme+ci"),
    ]
    assert model.remove_team_member(devs, Subject(SubjectKind.USER, alice.id))
    assert not model.remove_team_member(devs, Subject(SubjectKind.USER, alice.id))
    assert model.set_team_role(devs, TeamRole.CREATOR)
    found = model.lookup_team("acme", "devs")
    assert found is not None and found.role is TeamRole.CREATOR


def test_robots(model: SqlRegistryModel) -> None:
    model.create_namespace("acme", NamespaceKind.ORGANIZATION)
    created = model.create_robot("acme", "ci", b"h" * 32, "builds")
    assert created.name == "acme+ci"
    assert "hhhh" not in repr(created)
    with pytest.raises(DataModelError, match="already exists"):
        model.create_robot("acme", "ci", b"h" * 32)
    with pytest.raises(DataModelError, match="no namespace"):
        model.create_robot("nowhere", "ci", b"h" * 32)
    with pytest.raises(InvalidNameError):
        model.create_robot("acme", "a+b", b"h" * 32)
    found = model.lookup_robot("acme", "ci")
    assert found is not None and found.secret_hash == b"h" * 32
    listed = model.list_robots("acme")
    assert [r.name for r in listed] == ["acme+ci"] and listed[0].secret_hash == b""
    assert model.set_robot_secret_hash("acme", "ci", b"n" * 32)
    found = model.lookup_robot("acme", "ci")
    assert found is not None and found.secret_hash == b"n" * 32
    repository = make_repo(model, "acme", "app")
    model.set_repository_permission(repository, Subject(SubjectKind.ROBOT, created.id), Role.READ)
    assert model.delete_robot("acme", "ci")
    assert not model.delete_robot("acme", "ci")
    assert model.lookup_robot("acme", "ci") is None
    assert model.list_repository_permissions(repository) == []


def test_app_tokens(model: SqlRegistryModel) -> None:
    model.create_user("alice", None)
    token = model.create_app_token("alice", "laptop", b"t" * 32)
    assert (token.username, token.title) == ("alice", "laptop")
    with pytest.raises(DataModelError, match="no user"):
        model.create_app_token("nobody", "x", b"u" * 32)
    found = model.lookup_app_token(b"t" * 32)
    assert found is not None and found.uuid == token.uuid and found.username == "alice"
    assert model.lookup_app_token(b"z" * 32) is None
    assert [t.uuid for t in model.list_app_tokens("alice")] == [token.uuid]
    assert not model.delete_app_token("bob", token.uuid)
    assert model.delete_app_token("alice", token.uuid)
    assert model.lookup_app_token(b"t" * 32) is None


def test_accounts_key_is_shared_by_every_model_instance(
    model: SqlRegistryModel,
) -> None:
    key = model.accounts_key()
    assert len(key) == 32
    other = SqlRegistryModel(Database(model.database.engine))
    assert other.accounts_key() == key


def test_permissions_and_visibility(model: SqlRegistryModel) -> None:
    model.create_namespace("acme", NamespaceKind.ORGANIZATION)
    alice = model.create_user("alice", None)
    team = model.create_team("acme", "devs", TeamRole.MEMBER)
    bot = model.create_robot("acme", "ci", b"h" * 32)
    repository = make_repo(model, "acme", "app")
    assert not repository.is_public  # private by default
    alice_subject = Subject(SubjectKind.USER, alice.id)
    model.set_repository_permission(repository, alice_subject, Role.READ)
    model.set_repository_permission(repository, alice_subject, Role.WRITE)  # replaces
    model.set_repository_permission(repository, team, Role.ADMIN)
    model.set_repository_permission(repository, Subject(SubjectKind.ROBOT, bot.id), Role.READ)
    listed = {(p.kind, p.name): p.role for p in model.list_repository_permissions(repository)}
    assert listed == {
        (SubjectKind.USER, "alice"): Role.WRITE,
        (SubjectKind.TEAM, "devs"): Role.ADMIN,
        (SubjectKind.ROBOT, "acme+ci"): Role.READ,
    }
    assert model.delete_repository_permission(repository, team)
    assert not model.delete_repository_permission(repository, team)
    model.set_repository_visibility(repository, Visibility.PUBLIC)
    found = model.lookup_repository("acme", "app")
    assert found is not None and found.is_public


def test_access_facts(model: SqlRegistryModel) -> None:
    model.create_namespace("acme", NamespaceKind.ORGANIZATION)
    alice = model.create_user("alice", None)
    model.create_user("bob", None)
    creators = model.create_team("acme", "creators", TeamRole.CREATOR)
    readers = model.create_team("acme", "readers", TeamRole.MEMBER)
    model.add_team_member(creators, Subject(SubjectKind.USER, alice.id))
    model.add_team_member(readers, Subject(SubjectKind.USER, alice.id))
    bot = model.create_robot("acme", "ci", b"h" * 32)
    model.add_team_member(readers, Subject(SubjectKind.ROBOT, bot.id))
    repository = make_repo(model, "acme", "app")
    model.set_repository_permission(repository, readers, Role.READ)
    model.set_repository_permission(repository, Subject(SubjectKind.USER, alice.id), Role.WRITE)

    facts = model.access_facts(user("alice"), "acme", "app")
    assert facts.namespace_exists and facts.namespace_enabled and facts.namespace_is_organization
    assert facts.repository_exists and not facts.repository_public
    assert facts.principal_active and not facts.principal_superuser
    assert facts.team_roles == {TeamRole.CREATOR, TeamRole.MEMBER}
    assert facts.repository_roles == {Role.READ, Role.WRITE}
    assert not facts.owns_namespace

    robot_facts = model.access_facts(robot("acme+ci"), "acme", "app")
    assert robot_facts.robot_of_namespace and robot_facts.repository_roles == {Role.READ}

    assert model.access_facts(user("alice"), "alice", "new").owns_namespace
    bob = model.access_facts(user("bob"), "acme", "app")
    assert bob.principal_active and bob.repository_roles == frozenset()
    assert bob.team_roles == frozenset()

    missing = model.access_facts(user("alice"), "acme", "missing")
    assert missing.repository_exists is False and missing.team_roles == {
        TeamRole.CREATOR,
        TeamRole.MEMBER,
    }
    assert not model.access_facts(user("ghost"), "acme", "app").principal_active
    assert not model.access_facts(robot("other+ci"), "acme", "app").principal_active
    assert not model.access_facts(user("alice"), "nowhere", "app").namespace_exists

    model.set_user_enabled("alice", False)
    disabled = model.access_facts(user("alice"), "acme", "app")
    assert not disabled.principal_active and disabled.repository_roles == frozenset()
    model.set_namespace_enabled("acme", False)
    assert not model.access_facts(robot("acme+ci"), "acme", "app").namespace_enabled
    assert not model.access_facts(robot("acme+ci"), "acme", "app").principal_active


def test_readable_repository_names(model: SqlRegistryModel) -> None:
    model.create_namespace("acme", NamespaceKind.ORGANIZATION)
    model.create_namespace("corp", NamespaceKind.ORGANIZATION)
    alice = model.create_user("alice", None)
    model.create_user("bob", None)
    model.create_user("root", None, superuser=True)
    admins = model.create_team("corp", "owners", TeamRole.ADMIN)
    model.add_team_member(admins, Subject(SubjectKind.USER, alice.id))
    make_repo(model, "alice", "own")
    granted = make_repo(model, "acme", "granted")
    make_repo(model, "acme", "secret")
    public = make_repo(model, "acme", "public")
    make_repo(model, "corp", "internal")
    make_repo(model, "bob", "private")
    model.set_repository_visibility(public, Visibility.PUBLIC)
    model.set_repository_permission(granted, Subject(SubjectKind.USER, alice.id), Role.READ)

    assert model.list_readable_repository_names(user("alice")) == [
        "acme/granted",
        "acme/public",
        "alice/own",
        "corp/internal",
    ]
    assert model.list_readable_repository_names(Principal(PrincipalKind.ANONYMOUS, "")) == [
        "acme/public"
    ]
    assert model.list_readable_repository_names(user("bob")) == ["acme/public", "bob/private"]
    assert len(model.list_readable_repository_names(user("root"))) == 6
    assert model.list_readable_repository_names(user("alice"), after="acme/public", limit=1) == [
        "alice/own"
    ]
    model.set_namespace_enabled("acme", False)
    assert model.list_readable_repository_names(user("root")) == [
        "alice/own",
        "bob/private",
        "corp/internal",
    ]
    model.set_user_enabled("alice", False)  # a disabled user sees what anonymous sees
    assert model.list_readable_repository_names(user("alice")) == []


def test_the_protocol_is_documented_and_implemented() -> None:
    declared = [
        name
        for name, _ in inspect.getmembers(AccountsAndPermissions, inspect.isfunction)
        if not name.startswith("_")
    ]
    assert len(declared) >= 25
    for name in declared:
        method = getattr(AccountsAndPermissions, name)
        assert method.__doc__, f"{name} has no docstring"
        implemented = getattr(SqlRegistryModel, name)
        assert list(inspect.signature(implemented).parameters) == list(
            inspect.signature(method).parameters
        ), name


def test_racing_creators_of_one_user(model: SqlRegistryModel) -> None:
    """Workers bootstrapping the same first superuser at once: one creates it, the others
    learn it exists (no unique-key error escapes, no half-made account)."""
    outcomes: list[str] = []

    def create() -> None:
        try:
            model.create_user("root", "hash", superuser=True)
            outcomes.append("created")
        except DataModelError:
            outcomes.append("exists")

    threads = [threading.Thread(target=create) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) == ["created"] + ["exists"] * 5
    assert [u.name for u in model.list_users()] == ["root"]
