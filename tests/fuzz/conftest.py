"""The HTTP fuzz suite: hypothesis profiles and one seeded registry per module.

Profiles (``HYPOTHESIS_PROFILE``, read here, applied to the fuzz tests only):
  ``ci``   the default: 500 examples per test (5,000 in all), about a minute;
  ``long`` 5,000 per test (50,000 in all, about 15 minutes), by hand or nightly;
  ``dev``  a handful per test, to check the suite itself quickly.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings
from starlette.testclient import TestClient
from tests.fuzz.seed import Seeded, seed_registry

from moorage.app import build
from moorage.config import load_settings

_COMMON = {
    "deadline": None,  # a request's time depends on the shared machine, not on the input
    "suppress_health_check": (HealthCheck.too_slow, HealthCheck.data_too_large),
    "print_blob": True,
}
settings.register_profile("ci", max_examples=500, **_COMMON)  # type: ignore[arg-type]
settings.register_profile("long", max_examples=5_000, **_COMMON)  # type: ignore[arg-type]
settings.register_profile("dev", max_examples=10, **_COMMON)  # type: ignore[arg-type]

PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
fuzz_settings = settings(settings.get_profile(PROFILE))


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    """One registry for the module's examples (state piles up, as on a real server), seeded
    with a repository, blobs, an image, an index and an open upload session."""
    # Session-scoped: built before the per-test environment exists, so open explicitly.
    settings = load_settings(
        data_dir=tmp_path_factory.mktemp("fuzz") / "data", auth={"enabled": False}
    )
    application = build(settings)
    try:
        with TestClient(application.asgi, raise_server_exceptions=False) as client:
            yield seed_registry(client)
    finally:
        application.close()
