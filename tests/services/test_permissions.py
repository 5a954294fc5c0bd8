"""Who may do what: ``PermissionService.permitted`` over a real model, on SQLite and
PostgreSQL, for the cases the security suite of issue 12 names (and Quay's team roles)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import make_url

from moorage.db.engine import Database, create_database_engine
from moorage.db.migrate import upgrade
from moorage.domain.access import (
    ANONYMOUS,
    CATALOG_SCOPE,
    Action,
    Principal,
    PrincipalKind,
    ResourceScope,
    Role,
    TeamRole,
)
from moorage.domain.accounts import SubjectKind
from moorage.domain.records import Visibility
from moorage.model.sql import SqlRegistryModel
from moorage.services.accounts import AccountService
from moorage.services.permissions import PermissionService
from support import pgserver

ALL = "pull,push,delete,*"


@dataclass
class World:
    model: SqlRegistryModel
    accounts: AccountService
    permissions: PermissionService


def _populate(accounts: AccountService) -> None:
    model = accounts.model
    for name in ("alice", "bob", "carol", "dave", "erin", "frank", "gina", "hank"):
        accounts.create_user(name, None)
    accounts.create_user("root", None, superuser=True)
    accounts.create_organization("acme", admin="carol")
    accounts.create_organization("rival")
    accounts.create_team("acme", "readers", TeamRole.MEMBER)
    accounts.create_team("acme", "creators", TeamRole.CREATOR)
    accounts.add_team_member("acme", "readers", "dave")
    accounts.add_team_member("acme", "creators", "erin")
    for namespace, name in (
        ("acme", "app"),
        ("acme", "public"),
        ("alice", "private"),
        ("library", "alpine"),
        ("gone", "app"),
    ):
        if model.get_namespace(namespace) is None:
            model.create_namespace(namespace)
        assert model.create_repository(namespace, name) is not None
    accounts.set_visibility("acme/public", Visibility.PUBLIC)
    accounts.set_visibility("library/alpine", Visibility.PUBLIC)
    accounts.set_visibility("gone/app", Visibility.PUBLIC)
    accounts.grant("acme/app", SubjectKind.TEAM, "readers", Role.READ)
    accounts.grant("acme/app", SubjectKind.USER, "frank", Role.WRITE)
    accounts.grant("acme/app", SubjectKind.USER, "gina", Role.WRITE)
    accounts.grant("acme/app", SubjectKind.USER, "hank", Role.ADMIN)
    accounts.create_robot("acme", "ci")
    accounts.create_robot("acme", "ro")
    accounts.create_robot("rival", "ci")
    accounts.create_robot("alice", "bot")
    accounts.grant("acme/app", SubjectKind.ROBOT, "acme+ci", Role.WRITE)
    accounts.grant("acme/app", SubjectKind.ROBOT, "acme+ro", Role.READ)
    accounts.grant("alice/private", SubjectKind.ROBOT, "alice+bot", Role.READ)
    accounts.grant("gone/app", SubjectKind.USER, "bob", Role.ADMIN)
    accounts.set_user_enabled("frank", False)
    accounts.set_namespace_enabled("gone", False)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    server = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('permissions') / 'model.db'}"
    else:
        server = request.getfixturevalue("postgres_url")
        url = pgserver.create_database(server)
    upgrade(url)
    engine = create_database_engine(url)
    model = SqlRegistryModel(Database(engine))
    accounts = AccountService(model)
    _populate(accounts)
    yield World(model, accounts, PermissionService(model))
    engine.dispose()
    if server is not None:
        name = make_url(url).database
        assert name is not None
        pgserver.drop_database(server, name)


def user(name: str) -> Principal:
    return Principal(PrincipalKind.USER, name)


def robot(name: str) -> Principal:
    return Principal(PrincipalKind.ROBOT, name)


def scope(repository: str, actions: str) -> ResourceScope:
    return ResourceScope("repository", repository, frozenset(actions.split(",")))


# (case, principal, repository, asked, granted)
MATRIX = [
    ("no credentials on a private repository", ANONYMOUS, "acme/app", "pull", ""),
    ("anonymous pull of a public repository", ANONYMOUS, "acme/public", "pull,push", "pull"),
    ("anonymous pull by a one-component name", ANONYMOUS, "alpine", "pull", "pull"),
    ("another user's private repository", user("bob"), "alice/private", "pull,push", ""),
    ("the user's own namespace", user("alice"), "alice/private", ALL, ALL),
    (
        "push creating a repository in one's namespace",
        user("alice"),
        "alice/new",
        "pull,push",
        "pull,push",
    ),
    ("push with read permission (through a team)", user("dave"), "acme/app", "pull,push", "pull"),
    ("delete with read permission", user("dave"), "acme/app", "delete", ""),
    # The registry API's DELETE is an admin's (docs/accounts.md), not a writer's as in Quay.
    ("delete with write permission", user("gina"), "acme/app", "pull,push,delete", "pull,push"),
    ("admin actions with write permission", user("gina"), "acme/app", "*", ""),
    ("admin permission", user("hank"), "acme/app", ALL, ALL),
    ("an organization's admin (owners team)", user("carol"), "acme/app", ALL, ALL),
    ("an organization's admin creates", user("carol"), "acme/new", "pull,push", "pull,push"),
    (
        "a creator team member pushes a new repository",
        user("erin"),
        "acme/new",
        "pull,push",
        "pull,push",
    ),
    ("a creator reads no existing private repository", user("erin"), "acme/app", "pull,push", ""),
    ("a member team cannot create", user("dave"), "acme/new", "pull,push", ""),
    ("no user creates in another's namespace", user("bob"), "alice/new", "pull,push", ""),
    ("a user with nothing granted", user("bob"), "acme/app", "pull", ""),
    ("a robot with write", robot("acme+ci"), "acme/app", "pull,push,delete", "pull,push"),
    ("a robot with read", robot("acme+ro"), "acme/app", "pull,push", "pull"),
    ("a robot of a user", robot("alice+bot"), "alice/private", "pull,push", "pull"),
    ("a robot of another organization", robot("rival+ci"), "acme/app", "pull,push", ""),
    ("a robot of another organization, public", robot("rival+ci"), "acme/public", "pull", "pull"),
    ("a robot cannot create in its namespace", robot("acme+ci"), "acme/new", "push", ""),
    ("a robot that does not exist", robot("acme+ghost"), "acme/app", "pull", ""),
    ("a disabled user with write", user("frank"), "acme/app", "pull,push", ""),
    ("a disabled user, public", user("frank"), "acme/public", "pull", "pull"),
    ("a user that does not exist", user("ghost"), "acme/app", "pull", ""),
    ("disabled namespace, public, anonymous", ANONYMOUS, "gone/app", "pull", ""),
    ("disabled namespace, admin permission", user("bob"), "gone/app", "pull,push", ""),
    ("disabled namespace, superuser", user("root"), "gone/app", ALL, ""),
    ("disabled namespace, new repository", user("root"), "gone/new", "push", ""),
    ("a superuser", user("root"), "acme/app", ALL, ALL),
    ("a superuser creates a namespace", user("root"), "newns/app", "pull,push", "pull,push"),
    ("nobody else creates a namespace", user("alice"), "newns/app", "pull,push", ""),
    ("an invalid repository name", user("root"), "UPPER/app", "pull", ""),
    ("actions nobody knows", user("root"), "acme/app", "pull,launch", "pull"),
]


@pytest.mark.parametrize(
    ("principal", "repository", "asked", "granted"),
    [pytest.param(*case[1:], id=case[0]) for case in MATRIX],
)
def test_permission_matrix(
    world: World, principal: Principal, repository: str, asked: str, granted: str
) -> None:
    expected = frozenset(granted.split(",")) if granted else frozenset()
    assert world.permissions.permitted(principal, scope(repository, asked)) == expected


def test_the_principal_is_read_as_it_stands_now(world: World) -> None:
    """A principal carried by an old token gains nothing from its stale flags."""
    stale = Principal(PrincipalKind.USER, "bob", superuser=True)
    assert world.permissions.permitted(stale, scope("acme/app", "pull")) == frozenset()


def test_catalog_and_other_resources(world: World) -> None:
    assert world.permissions.permitted(ANONYMOUS, CATALOG_SCOPE) == frozenset()
    assert world.permissions.permitted(user("bob"), CATALOG_SCOPE) == {"*"}
    other = ResourceScope("registry", "something", frozenset({"*"}))
    assert world.permissions.permitted(user("root"), other) == frozenset()
    plugin = ResourceScope("plugin", "acme/app", frozenset({"pull"}))
    assert world.permissions.permitted(user("root"), plugin) == frozenset()


def test_readable_repositories(world: World) -> None:
    def readable(principal: Principal, **page: object) -> list[str]:
        # Without what the creator test (in the same world) made.
        names = world.permissions.readable_repositories(principal, **page)  # type: ignore[arg-type]
        return [name for name in names if not name.endswith("/made")]

    assert readable(ANONYMOUS) == ["acme/public", "library/alpine"]
    assert readable(user("dave")) == ["acme/app", "acme/public", "library/alpine"]
    assert readable(user("alice")) == ["acme/public", "alice/private", "library/alpine"]
    assert readable(robot("rival+ci")) == ["acme/public", "library/alpine"]
    assert readable(user("frank")) == ["acme/public", "library/alpine"]  # disabled
    assert readable(user("root")) == ["acme/app", "acme/public", "alice/private", "library/alpine"]
    assert readable(user("root"), after="acme/public", limit=1) == ["alice/private"]


def test_the_creator_of_a_repository_administers_it(world: World) -> None:
    erin = user("erin")
    assert world.permissions.permitted(erin, scope("acme/made", "*")) == frozenset()
    created = world.model.create_repository("acme", "made")
    assert created is not None
    world.permissions.repository_created(erin, created)
    assert world.permissions.permitted(erin, scope("acme/made", ALL)) == frozenset(ALL.split(","))
    assert world.permissions.may(erin, "acme/made", Action.DELETE)
    # The owner of a namespace needs no grant: none is recorded.
    own = world.model.create_repository("alice", "made")
    assert own is not None
    world.permissions.repository_created(user("alice"), own)
    assert world.accounts.list_permissions("alice/made") == []


def test_grants_follow_changes_at_once(world: World) -> None:
    world.accounts.grant("acme/public", SubjectKind.USER, "bob", Role.WRITE)
    assert world.permissions.permitted(user("bob"), scope("acme/public", "push")) == {"push"}
    world.accounts.revoke("acme/public", SubjectKind.USER, "bob")
    assert world.permissions.permitted(user("bob"), scope("acme/public", "push")) == frozenset()
    world.accounts.set_visibility("acme/public", Visibility.PRIVATE)
    assert world.permissions.permitted(ANONYMOUS, scope("acme/public", "pull")) == frozenset()
    world.accounts.set_visibility("acme/public", Visibility.PUBLIC)


PRINCIPALS = st.one_of(
    st.just(ANONYMOUS),
    st.builds(user, st.one_of(st.text(max_size=20), st.sampled_from(["alice", "root", "a\x00"]))),
    st.builds(robot, st.one_of(st.text(max_size=20), st.sampled_from(["acme+ci", "acme+\x00"]))),
)
SCOPE_NAMES = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["acme/app", "alpine", "acme/", "/app", "acme//app", "acme/app\x00"]),
)
ACTIONS = st.frozensets(st.sampled_from(["pull", "push", "delete", "*", "", "x"]), max_size=4)


@settings(max_examples=200, deadline=None)
@given(principal=PRINCIPALS, name=SCOPE_NAMES, actions=ACTIONS, after=st.text(max_size=12))
def test_any_scope_is_a_clean_answer(
    world: World, principal: Principal, name: str, actions: frozenset[str], after: str
) -> None:
    """Whatever a token request names (NULs included, which PostgreSQL refuses in text),
    the answer is a subset of what was asked, never an error."""
    granted = world.permissions.permitted(principal, ResourceScope("repository", name, actions))
    assert granted <= actions
    listed = world.permissions.readable_repositories(principal, after=after or None)
    assert listed == sorted(listed)
