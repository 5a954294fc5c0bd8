"""A replaced or revoked credential ends the logins made with it, at once: the refresh
tokens `docker login` keeps, and the remembered checks of Basic auth. Wired by `app.build`
over a real SQLite database, as the server runs it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from moorage.app import Application, build
from moorage.config import load_settings
from moorage.domain.access import Principal
from moorage.services.tokens import InvalidTokenError

PASSWORD = "first-password-8c1e"


@pytest.fixture
def application(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Application]:
    monkeypatch.setenv("MOORAGE_AUTH__ENABLED", "true")
    built = build(load_settings(data_dir=tmp_path / "data"))
    yield built
    built.close()


def _login(application: Application, username: str, secret: str) -> Principal | None:
    return application.auth.logins.login(username, secret, client="127.0.0.1")


def _refresh_token(application: Application, principal: Principal) -> str:
    return application.auth.tokens.new_refresh_token(principal, application.settings.auth.service)


def _redeems(application: Application, token: str) -> bool:
    try:
        application.auth.tokens.redeem_refresh_token(
            token, service=application.settings.auth.service
        )
    except InvalidTokenError:
        return False
    return True


def test_a_regenerated_robot_secret_ends_its_logins_at_once(application: Application) -> None:
    accounts = application.accounts
    accounts.create_user("alice", PASSWORD)
    accounts.create_organization("acme", admin="alice")
    robot, old_secret = accounts.create_robot("acme", "ci")
    principal = _login(application, robot.name, old_secret)
    assert principal is not None
    kept = _refresh_token(application, principal)
    assert _redeems(application, kept)

    new_secret = accounts.regenerate_robot_secret(robot.name)
    assert _login(application, robot.name, old_secret) is None  # not remembered
    assert not _redeems(application, kept)
    assert _login(application, robot.name, new_secret) is not None


def test_a_deleted_robot_s_refresh_tokens_end(application: Application) -> None:
    accounts = application.accounts
    accounts.create_user("alice", PASSWORD)
    accounts.create_organization("acme", admin="alice")
    robot, secret = accounts.create_robot("acme", "ci")
    principal = _login(application, robot.name, secret)
    assert principal is not None
    kept = _refresh_token(application, principal)
    accounts.delete_robot(robot.name)
    assert not _redeems(application, kept)
    assert _login(application, robot.name, secret) is None


def test_a_revoked_app_token_logs_nobody_in_and_ends_the_user_s_logins(
    application: Application,
) -> None:
    accounts = application.accounts
    accounts.create_user("alice", PASSWORD)
    token, secret = accounts.create_app_token("alice", "ci")
    principal = _login(application, "alice", secret)
    assert principal is not None
    kept = _refresh_token(application, principal)

    accounts.revoke_app_token("alice", token.uuid)
    assert _login(application, "alice", secret) is None  # not remembered
    assert _login(application, "$app", secret) is None
    assert not _redeems(application, kept)
    assert _login(application, "alice", PASSWORD) is not None  # the password still works


def test_a_new_password_ends_the_refresh_tokens_made_with_the_old_one(
    application: Application,
) -> None:
    accounts = application.accounts
    accounts.create_user("alice", PASSWORD)
    principal = _login(application, "alice", PASSWORD)
    assert principal is not None
    kept = _refresh_token(application, principal)
    accounts.set_password("alice", "second-password-77d0")
    assert not _redeems(application, kept)
    assert _login(application, "alice", "second-password-77d0") is not None


def test_other_accounts_keep_their_logins(application: Application) -> None:
    accounts = application.accounts
    accounts.create_user("alice", PASSWORD)
    accounts.create_user("bob", PASSWORD)
    bob = _login(application, "bob", PASSWORD)
    assert bob is not None
    kept = _refresh_token(application, bob)
    accounts.set_password("alice", "second-password-77d0")
    assert _redeems(application, kept)
