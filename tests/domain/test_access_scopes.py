"""The scope grammar (distribution's scope.md), attacked with hypothesis: whatever the text,
parsing gives a well-formed scope or ScopeSyntaxError, and what it prints parses back."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moorage.domain.access import (
    CATALOG_SCOPE,
    ResourceScope,
    ScopeSyntaxError,
    parse_scopes,
)

TYPE = re.compile(r"^[a-z0-9]+$")
ACTION = re.compile(r"^(?:[a-z]+|\*)$")

types = st.from_regex(r"\A[a-z0-9]{1,12}\Z")
components = st.from_regex(r"\A[a-z0-9]+(?:[._-][a-z0-9]+)*\Z").filter(lambda c: len(c) < 30)
hosts = st.from_regex(r"\A[a-z0-9]+(?:\.[a-z0-9]+)*(?::[0-9]{1,5})?\Z").filter(
    lambda h: len(h) < 40
)
names = st.builds(
    lambda host, parts: "/".join(([host] if host else []) + parts),
    st.one_of(st.none(), hosts),
    st.lists(components, min_size=1, max_size=4),
)
actions = st.frozensets(st.sampled_from(["pull", "push", "delete", "*", "x"]), max_size=4)
scopes = st.builds(ResourceScope, types, names, actions)


@given(scopes)
def test_a_printed_scope_parses_back_to_itself(scope: ResourceScope) -> None:
    assert ResourceScope.parse(str(scope)) == scope


@given(st.text(max_size=200))
def test_any_text_is_a_well_formed_scope_or_a_syntax_error(text: str) -> None:
    try:
        scope = ResourceScope.parse(text)
    except ScopeSyntaxError as exc:
        assert len(str(exc)) < 200  # the input is echoed at most ~100 characters
        return
    assert TYPE.fullmatch(scope.type)
    assert scope.name and scope.name.count(":") <= 1
    assert all(ACTION.fullmatch(action) for action in scope.actions)
    assert ResourceScope.parse(str(scope)) == scope


@settings(max_examples=50)  # each example draws several regex-generated names
@given(st.lists(scopes, max_size=4), st.sampled_from([" ", "  "]))
def test_space_separated_scopes_are_each_parsed(many: list[ResourceScope], gap: str) -> None:
    joined = gap.join(str(scope) for scope in many)
    assert parse_scopes([joined]) == many
    assert parse_scopes([str(scope) for scope in many]) == many


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "repository:acme/app:pull,push",
            ResourceScope("repository", "acme/app", frozenset({"pull", "push"})),
        ),
        (
            "repository:reg.example:5000/acme/app:pull",
            ResourceScope("repository", "reg.example:5000/acme/app", frozenset({"pull"})),
        ),
        (
            "repository(plugin):acme/app:pull",
            ResourceScope("repository", "acme/app", frozenset({"pull"})),
        ),
        ("registry:catalog:*", CATALOG_SCOPE),
        ("repository:acme/app:", ResourceScope("repository", "acme/app", frozenset())),
        (
            "repository:acme/app:pull,,push",
            ResourceScope("repository", "acme/app", frozenset({"pull", "push"})),
        ),
    ],
)
def test_examples_from_the_grammar(text: str, expected: ResourceScope) -> None:
    assert ResourceScope.parse(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "repository",
        "repository:acme/app",
        ":acme/app:pull",
        "Repository:acme/app:pull",
        "repository::pull",
        "repository:acme/app:PULL",
        "repository:acme/app:pull;push",
        "repository:a:b:c/d:pull",  # two colons in the name
        'repository:acme/"app:pull',
        "repository:acme\\app:pull",
        "repository:acme/app\x00:pull",
        # "$" in a regular expression matches before a final newline: fullmatch does not.
        "repository\n:acme/app:pull",
        "repository:acme/app\n:pull",
        "repository:acme/app:pull\n",
        "repository:acme/app\u00e9:pull",
        "repository:" + "a" * 2000 + ":pull",
    ],
)
def test_malformed_scopes_are_refused(text: str) -> None:
    with pytest.raises(ScopeSyntaxError):
        ResourceScope.parse(text)
