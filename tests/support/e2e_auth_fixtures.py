"""Fixtures for the clients that log in themselves: the docker CLI (on a throw-away dockerd),
containerd's ``ctr`` (on a throw-away containerd), buildah, and skopeo/podman with an empty auth
file; plus accounts made with the ``moorage`` CLI. ``tests/e2e/conftest.py`` imports them.

One containerd and one dockerd serve a whole session (per pytest worker); each test gets its
own docker config directory (``DOCKER_CONFIG``) and client storage, so logins never leak from
one test to another. A missing binary skips, or fails when ``CI`` is set (as in conftest).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from support.e2e_accounts import RegistryAccounts, RequestLog
from support.e2e_buildah import Buildah
from support.e2e_clients import ClientConfig, Podman, RegistryServer, Skopeo, require_binary
from support.e2e_daemons import (
    Containerd,
    Ctr,
    Docker,
    DockerDaemon,
    docker_cli_binary,
    start_containerd,
    start_dockerd,
)

# Any name and password log in to the reference registry, which runs open.
REFERENCE_CREDENTIALS = ("e2e-anyone", "e2e-anything")


def _missing(what: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(f"{what} is missing (CI is set, so end-to-end tests must run)")
    pytest.skip(f"{what} is missing; `.ci/run` installs it")


def _binary(name: str, package: str) -> str:
    try:
        return docker_cli_binary() if name == "docker" else require_binary(name)
    except FileNotFoundError:
        _missing(f"`{name}` (Debian package {package})")


def _require_root(what: str) -> None:
    if os.geteuid() != 0:
        pytest.skip(f"{what} runs as root (throw-away directories, vfs storage)")


@pytest.fixture(scope="session")
def login_credentials(registry: RegistryServer) -> tuple[str, str]:
    """The superuser's name and password (any pair against the open reference registry)."""
    return registry.credentials or REFERENCE_CREDENTIALS


@pytest.fixture(scope="session")
def auth_registry(registry: RegistryServer) -> RegistryServer:
    """The session registry, for tests about refusals: only moorage runs with auth on."""
    if registry.credentials is None:
        pytest.skip("the reference registry runs open: no login to check, nothing to refuse")
    return registry


@pytest.fixture(scope="session")
def accounts(auth_registry: RegistryServer) -> RegistryAccounts:
    return RegistryAccounts(auth_registry)


@pytest.fixture
def request_log(auth_registry: RegistryServer) -> RequestLog:
    """The server's request log from the start of the test on."""
    return RequestLog(auth_registry.log_path).start()


@pytest.fixture(scope="session")
def containerd_daemon() -> Iterator[Containerd]:
    containerd = _binary("containerd", "containerd")
    ctr = _binary("ctr", "containerd")
    _require_root("containerd")
    with start_containerd(containerd, ctr) as daemon:
        yield daemon


@pytest.fixture(scope="session")
def ctr(containerd_daemon: Containerd) -> Ctr:
    return Ctr(containerd_daemon, _binary("ctr", "containerd"))


@pytest.fixture(scope="session")
def docker_daemon(containerd_daemon: Containerd, registry_host: str) -> Iterator[DockerDaemon]:
    dockerd = _binary("dockerd", "docker.io")
    _binary("docker", "docker.io")
    _require_root("dockerd")
    with start_dockerd(dockerd, containerd_daemon, [registry_host]) as daemon:
        yield daemon


@pytest.fixture
def docker(docker_daemon: DockerDaemon, tmp_path: Path) -> Docker:
    """The docker CLI, logged in nowhere (a fresh ``DOCKER_CONFIG``)."""
    return Docker(docker_daemon, tmp_path / "docker-config", _binary("docker", "docker.io"))


@pytest.fixture
def fresh_client_config(tmp_path: Path, registry_host: str) -> ClientConfig:
    """containers/image config files with an empty auth file: nobody is logged in."""
    return ClientConfig.write(tmp_path / "fresh-client-config", registry_host)


@pytest.fixture
def fresh_skopeo(fresh_client_config: ClientConfig) -> Skopeo:
    return Skopeo(fresh_client_config, _binary("skopeo", "skopeo"))


@pytest.fixture
def fresh_podman(fresh_client_config: ClientConfig, tmp_path: Path) -> Iterator[Podman]:
    binary = _binary("podman", "podman")
    _require_root("podman")
    client = Podman.create(fresh_client_config, tmp_path / "fresh-podman", binary)
    try:
        yield client
    finally:
        client.cleanup()


@pytest.fixture
def buildah(fresh_client_config: ClientConfig, tmp_path: Path) -> Iterator[Buildah]:
    binary = _binary("buildah", "buildah")
    _require_root("buildah")
    client = Buildah.create(fresh_client_config, tmp_path / "buildah", binary)
    try:
        yield client
    finally:
        client.cleanup()
