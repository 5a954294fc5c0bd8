"""A disabled account stops being served within `auth.account_check_s`, whatever credential
names it: the access seam re-reads the account a bearer token or a remembered login names at
most that long after its last check. Over the real account service on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.apps import DATABASES, build_on

from moorage.app import Application
from moorage.domain.access import Principal, PrincipalKind
from moorage.services.account_standing import AccountStanding


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=DATABASES)
def application(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Application]:
    monkeypatch.setenv("MOORAGE_AUTH__ENABLED", "true")
    built = build_on(request, tmp_path / "data")
    yield built
    built.close()


def test_a_disabled_user_stops_within_the_bound(application: Application) -> None:
    user = application.accounts.create_user("bob", "bob-password-51f0")
    clock = Clock()
    standing = AccountStanding(application.accounts, ttl_s=5.0, clock=clock)
    token_principal = Principal(PrincipalKind.USER, "bob", user.id)
    assert standing.recent(token_principal) is None  # never checked: ask the database
    assert standing.check(token_principal) == token_principal
    application.accounts.set_user_enabled("bob", False)
    clock.now += 4.9
    assert standing.recent(token_principal) == token_principal  # within the bound
    clock.now += 0.2
    assert standing.recent(token_principal) is None  # past it: read again
    assert standing.check(token_principal) is None
    assert standing.recent(token_principal) is None  # a refusal is not remembered
    application.accounts.set_user_enabled("bob", True)
    assert standing.check(token_principal) == token_principal


def test_a_superuser_flag_and_a_deleted_robot_are_read_again(application: Application) -> None:
    application.accounts.create_user("alice", "alice-password-77aa")
    application.accounts.create_organization("acme", admin="alice")
    robot, _secret = application.accounts.create_robot("acme", "ci")
    standing = AccountStanding(application.accounts, ttl_s=0)
    robot_principal = Principal(PrincipalKind.ROBOT, robot.name, robot.id)
    assert standing.check(robot_principal) == robot_principal
    application.accounts.delete_robot(robot.name)
    assert standing.check(robot_principal) is None
    # A token claiming superuser for an ordinary user is answered with the account's own flag.
    claimed = Principal(PrincipalKind.USER, "alice", superuser=True)
    current = standing.check(claimed)
    assert current is not None and not current.superuser


def test_the_seam_is_wired_with_the_configured_bound(application: Application) -> None:
    assert application.auth.standing is not None
    assert application.auth.standing.ttl_s == application.settings.auth.account_check_s == 5.0
