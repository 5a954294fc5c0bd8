"""Logins through real clients against the registry with auth on: skopeo (``--creds`` and
``skopeo login``), podman (login / push / pull / logout), a robot account made with the
``moorage`` CLI (docker, skopeo, podman and ctr push and pull with its secret, are refused where
it has no grant, and dockerd's cross-repository mount from a repository it cannot read becomes
an upload), anonymous pulls of a public repository, and the refusals every client must see: a
wrong password, and a pull of a private repository without logging in. Each refusal is checked
on both sides: the client exits non-zero and stores nothing, the server answered 401 (no 5xx)
and wrote no password into its log.

The docker CLI's and buildah's own round trips are in test_docker_cli.py and
test_buildah_ctr.py; these tests skip against the reference registry, which runs open.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from support.e2e_accounts import RegistryAccounts, RequestLog, Robot
from support.e2e_buildah import Buildah
from support.e2e_clients import ClientError, Podman, RegistryServer, Skopeo
from support.e2e_daemons import Ctr, Docker
from support.e2e_images import BuiltImage, FileSpec, OciLayout, layer

CLIENTS = ("docker", "skopeo", "podman", "buildah", "ctr")


def _image(layout: OciLayout, tag: str, text: str) -> BuiltImage:
    return layout.add_image(
        [layer(FileSpec.literal("etc/e2e.txt", text.encode())), layer(FileSpec("bin/t", 3000, 9))],
        labels={"org.example.e2e": tag},
        tag=tag,
    )


def _push_as_superuser(skopeo: Skopeo, layout: OciLayout, tag: str, repository: str) -> None:
    skopeo.copy(f"oci:{layout.root}:{tag}", skopeo.ref(repository, tag), "--preserve-digests")


def assert_not_created(http: httpx.Client, repository: str) -> None:
    """Seen by the superuser: no such repository, and the catalog does not list it."""
    answer = http.get(f"/v2/{repository}/tags/list")
    assert answer.status_code == 404
    assert answer.json()["errors"][0]["code"] == "NAME_UNKNOWN"
    catalog = http.get("/v2/_catalog", params={"n": 100000}).json()["repositories"]
    assert repository not in catalog


def assert_tags(http: httpx.Client, repository: str, tags: set[str]) -> None:
    answer = http.get(f"/v2/{repository}/tags/list")
    assert answer.status_code == 200, answer.text
    assert set(answer.json()["tags"]) == tags


def assert_no_server_error(log: RequestLog) -> None:
    assert [r for r in log.requests() if r["status"] >= 500] == []


# -------------------------------------------------------------------------------------------------
# Every client behind one face, for the refusals


LoginCall = Callable[[str, str, str], subprocess.CompletedProcess[str]]


@dataclass(frozen=True)
class ClientUnderTest:
    name: str
    login: LoginCall | None  # (host, user, password); None: the client has no login
    saved_logins: Callable[[], str]  # what it stored after logins
    pull: Callable[[str], subprocess.CompletedProcess[str]]
    pull_as: LoginCall | None = None  # (ref, user, password), for a client without login


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def _containers_login(client: Skopeo | Podman) -> LoginCall:
    """``skopeo login`` / ``podman login``: the same flags, the password on stdin."""

    def login(host: str, user: str, password: str) -> subprocess.CompletedProcess[str]:
        return client("login", "--tls-verify=false", "--username", user, "--password-stdin",
                      host, input=password + "\n", timeout=60, check=False)  # fmt: skip

    return login


def _client(request: pytest.FixtureRequest, name: str, tmp_path: Path) -> ClientUnderTest:
    if name == "docker":
        docker: Docker = request.getfixturevalue("docker")
        return ClientUnderTest(
            name,
            lambda host, user, password: docker.login(host, user, password, check=False),
            lambda: _read(docker.config_dir / "config.json"),
            lambda ref: docker.pull(ref, check=False),
        )
    if name == "skopeo":
        skopeo: Skopeo = request.getfixturevalue("fresh_skopeo")

        def skopeo_pull(ref: str) -> subprocess.CompletedProcess[str]:
            return skopeo("copy", "--src-tls-verify=false", "--retry-times=0", f"docker://{ref}",
                          f"oci:{tmp_path / 'pulled'}:x", timeout=60, check=False)  # fmt: skip

        return ClientUnderTest(
            name, _containers_login(skopeo), lambda: _read(skopeo.config.auth_file), skopeo_pull
        )
    if name == "podman":
        podman: Podman = request.getfixturevalue("fresh_podman")

        def podman_pull(ref: str) -> subprocess.CompletedProcess[str]:
            return podman("pull", "--tls-verify=false", "--signature-policy",
                          str(podman.config.policy), ref, timeout=120, check=False)  # fmt: skip

        return ClientUnderTest(
            name, _containers_login(podman), lambda: _read(podman.config.auth_file), podman_pull
        )
    if name == "buildah":
        buildah: Buildah = request.getfixturevalue("buildah")
        return ClientUnderTest(
            name,
            lambda host, user, password: buildah.login(host, user, password, check=False),
            lambda: _read(buildah.config.auth_file),
            lambda ref: buildah.pull(ref, check=False),
        )
    assert name == "ctr"
    ctr: Ctr = request.getfixturevalue("ctr")

    def ctr_pull(ref: str, *user: str) -> subprocess.CompletedProcess[str]:
        return ctr("images", "pull", "--plain-http", "--snapshotter", "native", *user, ref,
                   timeout=60, check=False)  # fmt: skip

    return ClientUnderTest(
        name,
        None,  # ctr has no login: credentials go with each command (--user)
        lambda: "",
        ctr_pull,
        lambda ref, user, password: ctr_pull(ref, "--user", f"{user}:{password}"),
    )


@pytest.fixture(scope="module")
def private_image(
    skopeo: Skopeo, auth_registry: RegistryServer, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, BuiltImage]:
    """An image in a private repository (every repository is private unless made public)."""
    layout = OciLayout(tmp_path_factory.mktemp("private-image") / "layout")
    image = _image(layout, "v1", "private\n")
    repository = f"e2e/private/{uuid.uuid4().hex[:8]}"
    _push_as_superuser(skopeo, layout, "v1", repository)
    return repository, image


@pytest.fixture(scope="module")
def victim(accounts: RegistryAccounts) -> tuple[str, str]:
    """A user of its own: wrong passwords count against it, not against the suite's superuser."""
    name = f"e2e-victim-{uuid.uuid4().hex[:8]}"
    password = f"right-password-{uuid.uuid4().hex}"
    accounts.create_user(name, password)
    return name, password


@pytest.mark.parametrize("name", CLIENTS)
def test_pull_of_a_private_repository_without_login_fails(
    name: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    private_image: tuple[str, BuiltImage],
    auth_registry: RegistryServer,
    request_log: RequestLog,
) -> None:
    client = _client(request, name, tmp_path)
    repository, _ = private_image
    pulled = client.pull(f"{auth_registry.host}/{repository}:v1")

    assert pulled.returncode != 0, pulled.stdout
    # The registry refused the manifest with 401 (the anonymous token grants nothing here).
    on_repository = {
        (r["method"], r["status"])
        for r in request_log.requests()
        if r["path"].startswith(f"/v2/{repository}/")
    }
    assert on_repository, request_log.text()
    assert {status for _, status in on_repository} == {401}
    assert_no_server_error(request_log)


@pytest.fixture(scope="module")
def public_image(
    skopeo: Skopeo,
    accounts: RegistryAccounts,
    auth_registry: RegistryServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[str, BuiltImage]:
    layout = OciLayout(tmp_path_factory.mktemp("public-image") / "layout")
    image = _image(layout, "v1", "public\n")
    repository = f"e2e/public/{uuid.uuid4().hex[:8]}"
    _push_as_superuser(skopeo, layout, "v1", repository)
    accounts.make_public(repository)
    return repository, image


@pytest.mark.parametrize("name", CLIENTS)
def test_anonymous_pull_of_a_public_repository(
    name: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    public_image: tuple[str, BuiltImage],
    auth_registry: RegistryServer,
    request_log: RequestLog,
) -> None:
    client = _client(request, name, tmp_path)
    repository, _ = public_image
    pulled = client.pull(f"{auth_registry.host}/{repository}:v1")
    assert pulled.returncode == 0, pulled.stderr
    assert auth_registry.host not in client.saved_logins()  # nobody logged in
    served = [
        r["status"]
        for r in request_log.requests()
        if r["path"].startswith(f"/v2/{repository}/manifests/")
    ]
    assert served
    assert set(served) == {200}
    if name != "ctr":
        # They ask for an (anonymous) token first; ctr sends its HEAD without one, and a
        # public repository needs none.
        assert ("GET", 200) in request_log.token_requests()
    assert_no_server_error(request_log)


@pytest.mark.parametrize("name", CLIENTS)
def test_wrong_password_is_refused_and_never_logged(
    name: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    victim: tuple[str, str],
    private_image: tuple[str, BuiltImage],
    auth_registry: RegistryServer,
    request_log: RequestLog,
) -> None:
    client = _client(request, name, tmp_path)
    user, password = victim
    wrong = f"wrong-password-{uuid.uuid4().hex}"
    host = auth_registry.host
    if client.login is not None:
        failed = client.login(host, user, wrong)
        assert failed.returncode != 0, failed.stdout
        assert host not in client.saved_logins()  # nothing stored
        assert client.login(host, user, password).returncode == 0  # the account is fine
        assert host in client.saved_logins()
    else:
        assert client.pull_as is not None
        repository, _ = private_image
        failed = client.pull_as(f"{host}/{repository}:v1", user, wrong)
        assert failed.returncode != 0, failed.stdout

    # The token endpoint said 401 to the wrong password; no secret reached the log.
    assert {("GET", 401), ("POST", 401)} & set(request_log.token_requests())
    whole_log = auth_registry.log_path.read_text()
    assert wrong not in whole_log
    assert password not in whole_log
    assert_no_server_error(request_log)


# -------------------------------------------------------------------------------------------------
# skopeo: --creds, login, logout


def test_skopeo_with_creds_and_with_login(
    fresh_skopeo: Skopeo,
    auth_registry: RegistryServer,
    repo: str,
    layout_dir: Callable[[str], Path],
    request_log: RequestLog,
) -> None:
    assert auth_registry.credentials is not None
    creds = ":".join(auth_registry.credentials)
    source = OciLayout(layout_dir("src"))
    image = _image(source, "v1", "skopeo\n")
    ref = fresh_skopeo.ref(repo, "v1")

    fresh_skopeo.copy(f"oci:{source.root}:v1", ref, "--preserve-digests", "--dest-creds", creds)
    with pytest.raises(ClientError):  # nobody logged in, the repository is private
        fresh_skopeo.inspect(ref)
    assert fresh_skopeo.inspect(ref, "--creds", creds)["Digest"] == image.digest
    pulled = layout_dir("pulled")
    fresh_skopeo.copy(ref, f"oci:{pulled}:v1", "--src-creds", creds)
    assert (pulled / "blobs" / "sha256" / image.digest.removeprefix("sha256:")).exists()

    user, password = auth_registry.credentials
    fresh_skopeo("login", "--tls-verify=false", "--username", user, "--password-stdin",
                 auth_registry.host, input=password + "\n", timeout=60)  # fmt: skip
    assert auth_registry.host in fresh_skopeo.config.auth_file.read_text()
    assert fresh_skopeo.inspect(ref)["Digest"] == image.digest
    assert fresh_skopeo.list_tags(repo) == ["v1"]

    fresh_skopeo("logout", auth_registry.host, timeout=60)
    with pytest.raises(ClientError):
        fresh_skopeo.inspect(ref)
    assert ("GET", 200) in request_log.token_requests()
    assert_no_server_error(request_log)


# -------------------------------------------------------------------------------------------------
# podman: login, build, push, pull, logout


def test_podman_login_push_pull_logout(
    fresh_podman: Podman,
    auth_registry: RegistryServer,
    repo: str,
    tmp_path: Path,
    http: httpx.Client,
    request_log: RequestLog,
) -> None:
    assert auth_registry.credentials is not None
    user, password = auth_registry.credentials
    host = auth_registry.host
    fresh_podman("login", "--tls-verify=false", "--username", user, "--password-stdin", host,
                 input=password + "\n", timeout=60)  # fmt: skip
    context = tmp_path / "context"
    context.mkdir()
    (context / "file").write_bytes(b"built by podman after login\n")
    (context / "Containerfile").write_text("FROM scratch\nCOPY file /file\n")
    ref = fresh_podman.image_ref(repo, "v1")
    fresh_podman.build(context, ref)
    fresh_podman.push(ref, f"docker://{ref}")
    assert_tags(http, repo, {"v1"})

    fresh_podman("rmi", "--force", ref, timeout=120)
    fresh_podman.pull(ref)
    digest = fresh_podman.inspect_image(ref)["Digest"]
    assert http.head(f"/v2/{repo}/manifests/{digest}").status_code == 200

    fresh_podman("logout", host, timeout=60)
    fresh_podman("rmi", "--force", ref, timeout=120)
    with pytest.raises(ClientError):
        fresh_podman.pull(ref)
    assert ("GET", 200) in request_log.token_requests()
    assert_no_server_error(request_log)


# -------------------------------------------------------------------------------------------------
# A robot account


@dataclass(frozen=True)
class RobotSetup:
    robot: Robot
    granted: str  # the robot may write here; holds the superuser's tag "base"
    other: str  # exists (the superuser pushed "base"), no grant for the robot
    absent: str  # does not exist; the robot may not create it
    base: BuiltImage


@pytest.fixture
def robot_setup(
    accounts: RegistryAccounts, skopeo: Skopeo, layout_dir: Callable[[str], Path]
) -> RobotSetup:
    org = f"e2e-org-{uuid.uuid4().hex[:8]}"
    accounts.create_org(org)
    robot = accounts.create_robot(org, "ci")
    assert robot.name == f"{org}+ci"
    layout = OciLayout(layout_dir("robot-base"))
    base = _image(layout, "base", "robot base\n")
    for repository in (f"{org}/app", f"{org}/other"):
        _push_as_superuser(skopeo, layout, "base", repository)
    accounts.grant(f"{org}/app", robot=robot.name, role="write")
    return RobotSetup(robot, f"{org}/app", f"{org}/other", f"{org}/absent", base)


def _robot_secret_never_logged(registry: RegistryServer, robot: Robot) -> None:
    assert robot.secret not in registry.log_path.read_text()


def test_robot_pushes_and_pulls_with_docker(
    docker: Docker,
    robot_setup: RobotSetup,
    auth_registry: RegistryServer,
    tmp_path: Path,
    http: httpx.Client,
    request_log: RequestLog,
) -> None:
    host = auth_registry.host
    setup = robot_setup
    docker.login(host, *setup.robot.credentials)
    docker.pull(f"{host}/{setup.granted}:base")

    context = tmp_path / "ctx"
    context.mkdir()
    (context / "robot.txt").write_text("pushed by a robot\n")
    (context / "Dockerfile").write_text("FROM scratch\nCOPY robot.txt /robot.txt\n")
    ref = f"{host}/{setup.granted}:by-docker"
    image_id = docker.build(context, ref)
    docker.push(ref)
    assert_tags(http, setup.granted, {"base", "by-docker"})
    docker.rmi(ref)
    docker.pull(ref)
    assert docker.image_id(ref) == image_id

    # No grant: refused on a repository of its own organization, and nothing is created.
    assert docker.pull(f"{host}/{setup.other}:base", check=False).returncode != 0
    for repository in (setup.other, setup.absent):
        target = f"{host}/{repository}:by-docker"
        docker("tag", ref, target, timeout=60)
        assert docker.push(target, check=False).returncode != 0
    assert_tags(http, setup.other, {"base"})
    assert_not_created(http, setup.absent)
    _robot_secret_never_logged(auth_registry, setup.robot)
    assert_no_server_error(request_log)


def test_robot_push_does_not_mount_from_a_repository_it_cannot_read(
    docker: Docker,
    robot_setup: RobotSetup,
    auth_registry: RegistryServer,
    tmp_path: Path,
    http: httpx.Client,
    request_log: RequestLog,
) -> None:
    """The superuser pushes an image to ``other``; the robot pushes the same image to
    ``granted``. dockerd, knowing the layer is in ``other``, asks to mount it from there (as it
    does for the superuser in test_docker_cli.py, answered 201); for the robot, who cannot
    read ``other``, the registry answers with an upload instead (202), and the push works."""
    assert auth_registry.credentials is not None
    host = auth_registry.host
    setup = robot_setup
    superuser = Docker(docker.daemon, tmp_path / "superuser-docker-config", docker.binary)
    superuser.login(host, *auth_registry.credentials)
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "secret.txt").write_text(f"only in {setup.other}\n")
    (context / "Dockerfile").write_text("FROM scratch\nCOPY secret.txt /secret.txt\n")
    in_other = f"{host}/{setup.other}:secret"
    superuser.build(context, in_other)
    superuser.push(in_other)

    docker.login(host, *setup.robot.credentials)
    copied = f"{host}/{setup.granted}:copied"
    docker("tag", in_other, copied, timeout=60)
    docker.push(copied)

    uploads = [
        r["status"]
        for r in request_log.requests()
        if r["method"] == "POST" and r["path"] == f"/v2/{setup.granted}/blobs/uploads/"
    ]
    assert uploads
    assert 201 not in uploads  # nothing mounted from the unreadable repository
    assert_tags(http, setup.granted, {"base", "copied"})
    assert_no_server_error(request_log)


def test_robot_pushes_and_pulls_with_skopeo_creds(
    fresh_skopeo: Skopeo,
    robot_setup: RobotSetup,
    auth_registry: RegistryServer,
    layout_dir: Callable[[str], Path],
    http: httpx.Client,
    request_log: RequestLog,
) -> None:
    setup = robot_setup
    creds = ":".join(setup.robot.credentials)
    source = OciLayout(layout_dir("src"))
    image = _image(source, "v1", "robot via skopeo\n")

    fresh_skopeo.copy(f"oci:{source.root}:v1", fresh_skopeo.ref(setup.granted, "by-skopeo"),
                      "--preserve-digests", "--dest-creds", creds)  # fmt: skip
    info = fresh_skopeo.inspect(fresh_skopeo.ref(setup.granted, "by-skopeo"), "--creds", creds)
    assert info["Digest"] == image.digest
    base = fresh_skopeo.inspect(fresh_skopeo.ref(setup.granted, "base"), "--creds", creds)
    assert base["Digest"] == setup.base.digest
    assert_tags(http, setup.granted, {"base", "by-skopeo"})

    with pytest.raises(ClientError):
        fresh_skopeo.inspect(fresh_skopeo.ref(setup.other, "base"), "--creds", creds)
    for repository in (setup.other, setup.absent):
        with pytest.raises(ClientError):
            fresh_skopeo.copy(f"oci:{source.root}:v1", fresh_skopeo.ref(repository, "by-skopeo"),
                              "--dest-creds", creds)  # fmt: skip
    assert_tags(http, setup.other, {"base"})
    assert_not_created(http, setup.absent)
    _robot_secret_never_logged(auth_registry, setup.robot)
    assert_no_server_error(request_log)


def test_robot_pushes_and_pulls_with_podman(
    fresh_podman: Podman,
    robot_setup: RobotSetup,
    auth_registry: RegistryServer,
    http: httpx.Client,
    request_log: RequestLog,
) -> None:
    setup = robot_setup
    host = auth_registry.host
    user, secret = setup.robot.credentials
    fresh_podman("login", "--tls-verify=false", "--username", user, "--password-stdin", host,
                 input=secret + "\n", timeout=60)  # fmt: skip
    base = fresh_podman.image_ref(setup.granted, "base")
    fresh_podman.pull(base)
    assert fresh_podman.inspect_image(base)["Digest"] == setup.base.digest
    pushed = fresh_podman.image_ref(setup.granted, "by-podman")
    fresh_podman("tag", base, pushed, timeout=60)
    fresh_podman.push(pushed, f"docker://{pushed}")
    assert_tags(http, setup.granted, {"base", "by-podman"})

    for repository in (setup.other, setup.absent):
        target = fresh_podman.image_ref(repository, "by-podman")
        with pytest.raises(ClientError):
            fresh_podman.push(base, f"docker://{target}")
    assert_tags(http, setup.other, {"base"})
    assert_not_created(http, setup.absent)
    _robot_secret_never_logged(auth_registry, setup.robot)
    assert_no_server_error(request_log)


def test_robot_pushes_and_pulls_with_ctr(
    ctr: Ctr,
    robot_setup: RobotSetup,
    auth_registry: RegistryServer,
    http: httpx.Client,
    request_log: RequestLog,
) -> None:
    """containerd sends the robot's name (with its ``+``) in an OAuth2 password-grant form."""
    setup = robot_setup
    host = auth_registry.host
    user = ":".join(setup.robot.credentials)
    base = f"{host}/{setup.granted}:base"
    ctr("images", "pull", "--plain-http", "--snapshotter", "native", "--user", user, base)
    assert ctr.image_digest(base) == setup.base.digest
    pushed = f"{host}/{setup.granted}:by-ctr"
    ctr("images", "tag", base, pushed, timeout=60)
    ctr("images", "push", "--plain-http", "--user", user, pushed)
    assert_tags(http, setup.granted, {"base", "by-ctr"})
    assert ("POST", 200) in request_log.token_requests()

    for repository in (setup.other, setup.absent):
        target = f"{host}/{repository}:by-ctr"
        ctr("images", "tag", base, target, timeout=60)
        refused = ctr("images", "push", "--plain-http", "--user", user, target, check=False)
        assert refused.returncode != 0
        ctr("images", "rm", target, timeout=60)
    assert_tags(http, setup.other, {"base"})
    assert_not_created(http, setup.absent)
    ctr("images", "rm", base, pushed, timeout=60)
    _robot_secret_never_logged(auth_registry, setup.robot)
    assert_no_server_error(request_log)


def test_a_disabled_namespace_refuses_every_client_and_enabling_restores_it(
    docker: Docker,
    skopeo: Skopeo,
    robot_setup: RobotSetup,
    accounts: RegistryAccounts,
    auth_registry: RegistryServer,
    http: httpx.Client,
    request_log: RequestLog,
) -> None:
    """403 DENIED for everyone, the superuser included; nothing is deleted."""
    assert auth_registry.credentials is not None
    host = auth_registry.host
    org = robot_setup.granted.split("/")[0]
    docker.login(host, *auth_registry.credentials)
    ref = skopeo.ref(robot_setup.granted, "base")
    assert skopeo.inspect(ref)["Digest"] == robot_setup.base.digest

    accounts("namespace", "disable", org)
    with pytest.raises(ClientError) as refused:
        skopeo.inspect(ref)
    assert "denied" in refused.value.stderr.lower()
    pulled = docker.pull(f"{host}/{robot_setup.granted}:base", check=False)
    assert pulled.returncode != 0
    assert "denied" in pulled.stderr.lower()
    statuses = {r["status"] for r in request_log.requests() if r["path"].startswith(f"/v2/{org}/")}
    assert 403 in statuses

    accounts("namespace", "enable", org)
    assert skopeo.inspect(ref)["Digest"] == robot_setup.base.digest
    docker.pull(f"{host}/{robot_setup.granted}:base")
    assert_tags(http, robot_setup.granted, {"base"})
    assert_no_server_error(request_log)


# -------------------------------------------------------------------------------------------------
# A credential replaced or revoked must end the docker logins made with it


@pytest.mark.parametrize("change", ["robot regenerate", "user token revoke", "user set-password"])
def test_a_replaced_credential_ends_the_docker_login_made_with_it(
    change: str,
    docker: Docker,
    robot_setup: RobotSetup,
    accounts: RegistryAccounts,
    auth_registry: RegistryServer,
    tmp_path: Path,
    http: httpx.Client,
) -> None:
    assert auth_registry.credentials is not None
    host = auth_registry.host
    # Images live in the daemon, shared by every DOCKER_CONFIG: the superuser pulls one.
    superuser = Docker(docker.daemon, tmp_path / "superuser-docker-config", docker.binary)
    superuser.login(host, *auth_registry.credentials)
    base = f"{host}/{robot_setup.granted}:base"
    superuser.pull(base)

    if change == "robot regenerate":
        repository = robot_setup.granted
        docker.login(host, *robot_setup.robot.credentials)
    else:
        user = f"e2e-dev-{uuid.uuid4().hex[:8]}"
        password = f"password-{uuid.uuid4().hex}"
        accounts.create_user(user, password)
        token = json.loads(accounts("user", "token", "create", user, "--output", "json").stdout)
        repository = f"{user}/app"  # a user pushes to its own namespace
        docker.login(host, user, token["token"] if change == "user token revoke" else password)
    with_login = f"{host}/{repository}:with-login"
    docker("tag", base, with_login, timeout=60)
    docker.push(with_login)  # the login works

    if change == "robot regenerate":
        accounts("robot", "regenerate", robot_setup.robot.name)
    elif change == "user token revoke":
        accounts("user", "token", "revoke", user, token["uuid"])
    else:
        accounts("user", "set-password", user, "--password-stdin", input=f"new-{password}\n")
    after = f"{host}/{repository}:after"
    docker("tag", base, after, timeout=60)
    assert docker.push(after, check=False).returncode != 0
    assert "after" not in http.get(f"/v2/{repository}/tags/list").json()["tags"]
