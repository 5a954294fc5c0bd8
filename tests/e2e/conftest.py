"""End-to-end fixtures: a real registry process and real clients (skopeo, podman, umoci, oras).

Target: ``moorage serve`` by default; ``MOORAGE_E2E_TARGET=reference`` runs the very same tests
against Debian's ``docker-registry`` (CNCF Distribution 2.8) to validate the tests themselves.
Tests marked ``reference_xfail(reason=...)`` need something Distribution 2.8 lacks (the referrers
API, for instance): they are strict xfail against the reference and plain tests against moorage.

A missing client binary skips its tests, or fails them when ``CI`` is set.

Fixtures:
  ``target`` (session): ``moorage`` or ``reference``.
  ``registry`` (session): the running ``RegistryServer`` (``.host`` is ``127.0.0.1:PORT``,
  ``.pid`` its process id, ``.is_reference``).
  ``registry_host`` (session): ``127.0.0.1:PORT``.
  ``http`` (function): an ``httpx.Client`` on the registry's base URL.
  ``repo`` (function): a repository name unique to the test
  (``e2e/test-skopeo/delete-then-inspect-fails-1a2b3c4d``).
  ``skopeo``, ``podman``, ``umoci``, ``oras_cli`` (session/function): the client wrappers of
  ``support.e2e_clients``; ``layout_dir`` (function): a fresh directory for an OCI layout.
  ``docker``, ``ctr``, ``buildah``, ``fresh_skopeo``, ``fresh_podman`` (nobody logged in),
  ``accounts``, ``request_log``, ``login_credentials``: ``support.e2e_auth_fixtures``.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import httpx
import pytest

from support.e2e_auth_fixtures import (  # noqa: F401 (clients that log in, daemons, accounts)
    accounts,
    auth_registry,
    buildah,
    containerd_daemon,
    ctr,
    docker,
    docker_daemon,
    fresh_client_config,
    fresh_podman,
    fresh_skopeo,
    login_credentials,
    request_log,
)
from support.e2e_clients import (
    ClientConfig,
    Podman,
    RegistryServer,
    Skopeo,
    Umoci,
    e2e_target,
    oras,
    require_binary,
    start_registry,
)
from support.s3servers import moto_s3, seaweedfs_s3  # noqa: F401 (fixtures for scale-out tests)

# Read once, at import: the suite-wide autouse fixture strips MOORAGE_* variables during tests.
TARGET = e2e_target()
HERE = Path(__file__).parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: end-to-end test with a real server and real clients")
    config.addinivalue_line(
        "markers",
        "reference_xfail(reason): expected to fail only against the reference registry "
        "(MOORAGE_E2E_TARGET=reference)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE not in Path(str(item.path)).parents:
            continue
        item.add_marker(pytest.mark.e2e)
        marker = item.get_closest_marker("reference_xfail")
        if marker is not None and TARGET == "reference":
            reason = marker.kwargs.get("reason") or (marker.args[0] if marker.args else "")
            item.add_marker(pytest.mark.xfail(reason=f"reference registry: {reason}", strict=True))


def _missing(what: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(f"{what} is missing (CI is set, so end-to-end tests must run)")
    pytest.skip(f"{what} is missing; `.ci/run` installs it")


def _binary(name: str, package: str) -> str:
    try:
        return require_binary(name)
    except FileNotFoundError:
        _missing(f"`{name}` (Debian package {package})")


@pytest.fixture(scope="session")
def target() -> str:
    """``moorage`` or ``reference`` (checked: the reference binary must exist)."""
    if TARGET == "reference":
        _binary("docker-registry", "docker-registry")
    return TARGET


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory, target: str) -> Iterator[RegistryServer]:
    # Auth on, as users run it: the clients log in with a superuser's credentials.
    with start_registry(tmp_path_factory.mktemp("registry"), target, auth=True) as server:
        yield server


@pytest.fixture(scope="session")
def registry_host(registry: RegistryServer) -> str:
    return registry.host


@pytest.fixture
def http(registry: RegistryServer) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=registry.base_url, timeout=60, trust_env=False, auth=registry.credentials
    ) as client:
        yield client


@pytest.fixture
def repo(request: pytest.FixtureRequest) -> str:
    module = re.sub(r"[^a-z0-9]+", "-", request.node.path.stem.lower()).strip("-")
    name = re.sub(r"^test_", "", request.node.originalname.lower())
    name = re.sub(r"[^a-z0-9]+", "-", name).strip("-")[:40] or "t"
    return f"e2e/{module}/{name}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def client_config(
    tmp_path_factory: pytest.TempPathFactory, registry: RegistryServer
) -> ClientConfig:
    return ClientConfig.write(
        tmp_path_factory.mktemp("client-config"), registry.host, registry.credentials
    )


@pytest.fixture(scope="session")
def skopeo(client_config: ClientConfig) -> Skopeo:
    return Skopeo(client_config, _binary("skopeo", "skopeo"))


@pytest.fixture(scope="session")
def umoci() -> Umoci:
    return Umoci(_binary("umoci", "umoci"))


@pytest.fixture
def podman(client_config: ClientConfig, tmp_path: Path) -> Iterator[Podman]:
    binary = _binary("podman", "podman")
    if os.geteuid() != 0:
        pytest.skip("the podman tests run podman as root (throw-away --root, vfs storage)")
    client = Podman.create(client_config, tmp_path / "podman", binary)
    try:
        yield client
    finally:
        client.cleanup()


@pytest.fixture(scope="session")
def oras_cli(registry: RegistryServer) -> Callable[..., dict[str, object]]:
    if importlib.util.find_spec("oras") is None:
        _missing("the Python package `oras` (oras-py)")
    return functools.partial(oras, credentials=registry.credentials)


@pytest.fixture
def layout_dir(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """``layout_dir("name")``: a not-yet-existing directory path for an OCI layout (removed
    after the test: some hold 100 MiB layers)."""

    def make(name: str) -> Path:
        return tmp_path / "layouts" / name

    yield make
    shutil.rmtree(tmp_path / "layouts", ignore_errors=True)
