"""The seam's remembered pulls: only a permitted pull is kept, for at most its lifetime."""

from __future__ import annotations

from moorage.domain.access import ANONYMOUS, REGISTRY, REPOSITORY, Principal, PrincipalKind
from moorage.services.recent_pulls import RecentPulls

BOB = Principal(PrincipalKind.USER, "bob", id=2)
PULL, PUSH = frozenset({"pull"}), frozenset({"push"})


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_permitted_pull_is_reused_until_its_lifetime_ends() -> None:
    clock = Clock()
    recent = RecentPulls(5.0, clock=clock)
    assert not recent.allowed(BOB, REPOSITORY, "alice/app", "pull")
    recent.remember(BOB, REPOSITORY, "alice/app", PULL)
    assert recent.allowed(BOB, REPOSITORY, "alice/app", "pull")
    clock.now += 4.9
    assert recent.allowed(BOB, REPOSITORY, "alice/app", "pull")
    clock.now += 0.1
    assert not recent.allowed(BOB, REPOSITORY, "alice/app", "pull")


def test_only_pulls_that_were_allowed_are_kept_and_only_for_that_caller() -> None:
    recent = RecentPulls(5.0, clock=Clock())
    recent.remember(BOB, REPOSITORY, "alice/app", frozenset())  # a refusal
    recent.remember(BOB, REPOSITORY, "alice/push-only", PUSH)
    assert not recent.allowed(BOB, REPOSITORY, "alice/app", "pull")
    assert not recent.allowed(BOB, REPOSITORY, "alice/push-only", "pull")
    recent.remember(BOB, REPOSITORY, "alice/app", frozenset({"pull", "push", "delete"}))
    # Pushes and deletes are always asked again, whatever was answered.
    assert not recent.allowed(BOB, REPOSITORY, "alice/app", "push")
    assert not recent.allowed(BOB, REPOSITORY, "alice/app", "delete")
    assert not recent.allowed(ANONYMOUS, REPOSITORY, "alice/app", "pull")
    assert not recent.allowed(BOB, REPOSITORY, "alice/other", "pull")
    recent.remember(BOB, REGISTRY, "catalog", frozenset({"*"}))
    assert not recent.allowed(BOB, REGISTRY, "catalog", "pull")


def test_a_zero_lifetime_remembers_nothing_and_the_size_is_bounded() -> None:
    off = RecentPulls(0.0, clock=Clock())
    off.remember(BOB, REPOSITORY, "alice/app", PULL)
    assert not off.allowed(BOB, REPOSITORY, "alice/app", "pull")
    small = RecentPulls(5.0, size=2, clock=Clock())
    for name in ("a/one", "a/two", "a/three"):
        small.remember(BOB, REPOSITORY, name, PULL)
    assert not small.allowed(BOB, REPOSITORY, "a/one", "pull")  # the oldest went first
    assert small.allowed(BOB, REPOSITORY, "a/two", "pull")
    assert small.allowed(BOB, REPOSITORY, "a/three", "pull")
