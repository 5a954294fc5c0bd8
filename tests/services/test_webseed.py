"""Web seed URLs (services/webseed.py) over the real secret store and accounts (SQLite): only
a URL the registry signed, unchanged and unexpired, names a holder; anything else is a
WebSeedRefusedError, never another exception."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qsl, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from moorage.domain.access import ANONYMOUS, PrincipalKind
from moorage.model.sql import SqlRegistryModel
from moorage.model.sql.token_store import SqlTokenStore
from moorage.services.accounts import AccountService
from moorage.services.webseed import WebSeedRefusedError, WebSeedSigner

NAME = "alice/app"
DIGEST = "sha256:" + "ab" * 32
NOW = 1_800_000_000.0


@pytest.fixture
def accounts(model: SqlRegistryModel) -> AccountService:
    service = AccountService(model)
    service.create_user("alice", "alice-password-1")
    return service


def signer_at(
    model: SqlRegistryModel, accounts: AccountService | None, clock: Callable[[], float]
) -> WebSeedSigner:
    return WebSeedSigner(SqlTokenStore(model.database), 3600, directory=accounts, clock=clock)


def parts(url: str) -> tuple[str, str, dict[str, str]]:
    split = urlsplit(url)
    path = split.path.removeprefix("/c1/webseed/")
    name, digest = path.rsplit("/blobs/", 1)
    return name, digest, dict(parse_qsl(split.query))


def test_a_signed_url_names_its_holder_until_it_expires(
    model: SqlRegistryModel, accounts: AccountService
) -> None:
    now = [NOW]
    signer = signer_at(model, accounts, lambda: now[0])
    signed = signer.sign("http://reg.example:5000/", NAME, DIGEST, "alice")
    assert signed.url.startswith(f"http://reg.example:5000/c1/webseed/{NAME}/blobs/{DIGEST}?")
    assert signed.expires == int(NOW) + 3600
    name, digest, query = parts(signed.url)
    holder = signer.holder(name, digest, query)
    assert (holder.kind, holder.name) == (PrincipalKind.USER, "alice")
    anonymous = parts(signer.sign("http://r", NAME, DIGEST, None).url)
    assert signer.holder(*anonymous) == ANONYMOUS
    now[0] = NOW + 3600  # the last second it is valid
    assert signer.holder(name, digest, query).name == "alice"
    now[0] = NOW + 3601
    with pytest.raises(WebSeedRefusedError, match="expired"):
        signer.holder(name, digest, query)


def test_every_worker_checks_with_the_same_key(
    model: SqlRegistryModel, accounts: AccountService
) -> None:
    """The key is made once into the database: another signer (another worker) over the
    same database accepts the URL; one over another database does not."""
    first = signer_at(model, accounts, lambda: NOW)
    second = signer_at(model, accounts, lambda: NOW)
    url = first.sign("http://r", NAME, DIGEST, "alice").url
    assert second.holder(*parts(url)).name == "alice"


def test_a_disabled_account_s_urls_stop_working(
    model: SqlRegistryModel, accounts: AccountService
) -> None:
    signer = signer_at(model, accounts, lambda: NOW)
    signed = parts(signer.sign("http://r", NAME, DIGEST, "alice").url)
    accounts.set_user_enabled("alice", False)
    with pytest.raises(WebSeedRefusedError, match="gone"):
        signer.holder(*signed)


_FIELD = st.text(max_size=40) | st.sampled_from(["", "0", "1800000000", "alice", "bob+robot"])


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    field=st.sampled_from(["name", "digest", "expires", "user", "signature"]),
    value=_FIELD,
)
def test_any_changed_field_is_refused(
    model: SqlRegistryModel, accounts: AccountService, field: str, value: str
) -> None:
    signer = signer_at(model, accounts, lambda: NOW)
    name, digest, query = parts(signer.sign("http://r", NAME, DIGEST, "alice").url)
    original = {"name": name, "digest": digest, **query}
    if original.get(field) == value:
        return
    changed = {**original, field: value}
    name, digest = changed.pop("name"), changed.pop("digest")
    with pytest.raises(WebSeedRefusedError):
        signer.holder(name, digest, changed)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(query=st.dictionaries(st.sampled_from(["expires", "user", "signature", "x"]), _FIELD))
def test_made_up_urls_are_refused_and_nothing_else(
    model: SqlRegistryModel, accounts: AccountService, query: dict[str, str]
) -> None:
    signer = signer_at(model, accounts, lambda: NOW)
    with pytest.raises(WebSeedRefusedError):
        signer.holder(NAME, DIGEST, query)


def test_an_oversized_field_is_refused_before_any_work(model: SqlRegistryModel) -> None:
    signer = signer_at(model, None, lambda: NOW)
    query = {"expires": "1" * 10_000, "signature": "x"}
    with pytest.raises(WebSeedRefusedError, match="malformed"):
        signer.holder(NAME, DIGEST, query)
