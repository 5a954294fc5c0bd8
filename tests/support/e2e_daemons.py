"""Throw-away container daemons for the end-to-end tests: containerd and dockerd, with their CLIs.

Both run as root (they need it) with every directory of their own in a fresh, short /tmp
directory (unix socket paths must stay under 108 bytes; pytest's tmp paths are longer):

* containerd gets a config file of ours: root, state, gRPC/ttrpc sockets, and the ``opt``
  plugin's directory (``/opt/containerd`` by default) all inside that directory, CRI off.
* dockerd runs with ``--storage-driver=vfs --iptables=false --bridge=none``, its own
  ``--data-root``, ``--exec-root``, ``-H unix://…``, ``--pidfile``, no ``daemon.json``, our
  containerd (``--containerd``, so it does not start one of its own that would write
  ``/opt/containerd``), and the test registry as an insecure (plain HTTP) registry. Docker 20.10
  still writes two paths we cannot move: its identity key ``/etc/docker/key.json`` and the
  plugin socket directory ``/run/docker``; each is removed afterwards if it did not exist before.

Each daemon runs in its own session with its output in a log file, under ``timeout`` (an hour
at most, even if the test run dies), is waited for with a time bound, and is always stopped
(SIGTERM to the whole process group, SIGKILL after a grace period); whatever it mounted under
its directory is unmounted and the directory removed. No daemon is given anything but the
loopback registry to talk to, and proxies are stripped from their environment.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx

from support.e2e_clients import ClientError, require_binary, run

PROXY_VARIABLES = (
    "http_proxy",
    "https_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
)
DOCKERD_FIXED_PATHS = (Path("/etc/docker/key.json"), Path("/run/docker"))
DEBIAN_DOCKER_CLI = Path("/usr/bin/docker")  # package docker.io; matches its dockerd
DAEMON_LIFETIME_S = 3600  # a whole end-to-end session takes minutes


def loopback_env(**extra: str) -> dict[str, str]:
    """The current environment without proxies, with ``extra`` on top."""
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARIABLES}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env.update(extra)
    return env


def docker_cli_binary() -> str:
    """Debian's docker CLI (the same release as its dockerd) before any other on PATH."""
    if DEBIAN_DOCKER_CLI.exists():
        return str(DEBIAN_DOCKER_CLI)
    return require_binary("docker")


# -------------------------------------------------------------------------------------------------
# Daemon processes


@dataclass
class Daemon:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, limit: int = 4000) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return text if len(text) <= limit else "…" + text[-limit:]

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise AssertionError(
                f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}"
            )


def _spawn(name: str, command: Sequence[str], log_path: Path, env: dict[str, str]) -> Daemon:
    # coreutils' timeout bounds the daemon's life even if the test run itself is killed.
    bounded = ["timeout", "--kill-after=20", str(DAEMON_LIFETIME_S), *command]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            bounded,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Daemon(name, process, log_path)


def _wait_until(daemon: Daemon, ready: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        daemon.check_alive()
        if ready():
            return
        time.sleep(0.2)
    raise AssertionError(f"{daemon.name} was not ready within {timeout}s:\n{daemon.log_tail()}")


def _stop(daemon: Daemon, grace: float = 20) -> None:
    if daemon.process.poll() is not None:
        return
    with suppress(ProcessLookupError):
        os.killpg(daemon.process.pid, signal.SIGTERM)
    try:
        daemon.process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(daemon.process.pid, signal.SIGKILL)
        daemon.process.wait(timeout=grace)


def _mounts_under(root: Path) -> list[str]:
    prefix = str(root.resolve()) + "/"
    mounts = []
    with suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            point = line.split()[4].replace("\\040", " ")
            if point.startswith(prefix):
                mounts.append(point)
    return sorted(mounts, key=len, reverse=True)  # innermost first


def remove_tree(root: Path) -> None:
    """Unmount what a daemon left mounted under ``root`` (lazily), then remove ``root``."""
    for point in _mounts_under(root):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True, timeout=30)
    shutil.rmtree(root, ignore_errors=True)


@dataclass(frozen=True)
class HostLeftovers:
    """Paths a daemon writes outside the directories it is given; ``remove_created`` removes
    those that did not exist when ``record`` ran."""

    created_by_us: tuple[Path, ...]

    @classmethod
    def record(cls, paths: Sequence[Path]) -> HostLeftovers:
        return cls(tuple(path for path in paths if not path.exists()))

    def remove_created(self) -> None:
        for path in self.created_by_us:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


# -------------------------------------------------------------------------------------------------
# containerd and ctr


@dataclass(frozen=True)
class Containerd:
    root: Path
    daemon: Daemon

    @property
    def address(self) -> Path:
        return self.root / "containerd.sock"


def containerd_config(root: Path) -> str:
    """Everything containerd writes goes under ``root``; no CRI, no debug or metrics socket."""
    return (
        "version = 2\n"
        f'root = "{root / "root"}"\n'
        f'state = "{root / "state"}"\n'
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
        f'[grpc]\n  address = "{root / "containerd.sock"}"\n'
        f'[ttrpc]\n  address = "{root / "containerd.sock.ttrpc"}"\n'
        '[debug]\n  address = ""\n'
        '[metrics]\n  address = ""\n'
        f'[plugins."io.containerd.internal.v1.opt"]\n  path = "{root / "opt"}"\n'
    )


@contextmanager
def start_containerd(binary: str, ctr_binary: str, timeout: float = 60) -> Iterator[Containerd]:
    root = Path(tempfile.mkdtemp(prefix="e2e-ctrd-", dir="/tmp"))
    try:
        config = root / "config.toml"
        config.write_text(containerd_config(root))
        daemon = _spawn(
            "containerd", [binary, "--config", str(config)], root / "containerd.log", loopback_env()
        )
        containerd = Containerd(root, daemon)
        try:

            def ready() -> bool:
                if not containerd.address.exists():
                    return False
                answer = subprocess.run(
                    [ctr_binary, "--address", str(containerd.address), "version"],
                    capture_output=True,
                    timeout=10,
                    check=False,
                )
                return answer.returncode == 0

            _wait_until(daemon, ready, timeout)
            yield containerd
        finally:
            _stop(daemon)
    finally:
        remove_tree(root)


@dataclass(frozen=True)
class Ctr:
    """containerd's own CLI on a throw-away containerd, in a namespace of its own."""

    containerd: Containerd
    binary: str = "ctr"
    namespace: str = "moorage-e2e"

    def __call__(
        self, *args: str, timeout: float = 180, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        command = [self.binary, "--address", str(self.containerd.address),
                   "--namespace", self.namespace, *args]  # fmt: skip
        return run(command, timeout=timeout, env=loopback_env(), check=check)

    def image_digest(self, ref: str) -> str:
        """The manifest digest ``ctr images ls`` records for ``ref``."""
        listing = self("images", "ls", timeout=60).stdout.splitlines()
        for line in listing[1:]:
            fields = line.split()
            if fields and fields[0] == ref:
                return next(field for field in fields if field.startswith("sha256:"))
        raise AssertionError(f"{ref} not in `ctr images ls`:\n" + "\n".join(listing))


# -------------------------------------------------------------------------------------------------
# dockerd and the docker CLI


@dataclass(frozen=True)
class DockerDaemon:
    root: Path
    daemon: Daemon

    @property
    def socket(self) -> Path:
        return self.root / "docker.sock"


@contextmanager
def start_dockerd(
    binary: str, containerd: Containerd, insecure_registries: Sequence[str], timeout: float = 90
) -> Iterator[DockerDaemon]:
    leftovers = HostLeftovers.record(DOCKERD_FIXED_PATHS)
    root = Path(tempfile.mkdtemp(prefix="e2e-dockerd-", dir="/tmp"))
    try:
        # An empty daemon.json of ours: the host's /etc/docker/daemon.json must not count.
        (root / "daemon.json").write_text("{}")
        command = [
            binary,
            "--config-file", str(root / "daemon.json"),
            "--storage-driver=vfs",
            "--iptables=false",
            "--ip6tables=false",
            "--ip-forward=false",
            "--ip-masq=false",
            "--bridge=none",
            "--userland-proxy=false",
            "--data-root", str(root / "data"),
            "--exec-root", str(root / "exec"),
            "--pidfile", str(root / "docker.pid"),
            "--containerd", str(containerd.address),
            "--containerd-namespace", "moorage-e2e-docker",
            "--containerd-plugins-namespace", "moorage-e2e-docker-plugins",
            "-H", f"unix://{root / 'docker.sock'}",
            *(f"--insecure-registry={host}" for host in insecure_registries),
        ]  # fmt: skip
        daemon = _spawn("dockerd", command, root / "dockerd.log", loopback_env())
        dockerd = DockerDaemon(root, daemon)
        try:

            def ready() -> bool:
                if not dockerd.socket.exists():
                    return False
                transport = httpx.HTTPTransport(uds=str(dockerd.socket))
                try:
                    with httpx.Client(transport=transport, timeout=5) as client:
                        return client.get("http://docker/_ping").status_code == 200
                except httpx.TransportError:
                    return False

            _wait_until(daemon, ready, timeout)
            yield dockerd
        finally:
            _stop(daemon)
    finally:
        remove_tree(root)
        leftovers.remove_created()


@dataclass(frozen=True)
class Docker:
    """The docker CLI on a throw-away dockerd with a config directory (``DOCKER_CONFIG``) of
    its own, so a login here touches no user's ``~/.docker``. Builds use the classic builder
    (``DOCKER_BUILDKIT=0``): Debian's docker.io has no buildx, and a ``FROM scratch`` build
    with ``COPY`` pulls nothing."""

    daemon: DockerDaemon
    config_dir: Path
    binary: str = "docker"

    def env(self) -> dict[str, str]:
        return loopback_env(
            DOCKER_HOST=f"unix://{self.daemon.socket}",
            DOCKER_CONFIG=str(self.config_dir),
            DOCKER_BUILDKIT="0",
            DOCKER_CLI_EXPERIMENTAL="enabled",  # `docker manifest` on older CLIs
        )

    def __call__(
        self, *args: str, timeout: float = 180, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        self.config_dir.mkdir(parents=True, exist_ok=True)
        return run([self.binary, *args], timeout=timeout, env=self.env(), check=check, input=input)

    def login(
        self, host: str, username: str, password: str, *, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self("login", host, "--username", username, "--password-stdin",
                    input=password + "\n", timeout=60, check=check)  # fmt: skip

    def saved_auth(self, host: str) -> dict[str, str]:
        """What ``docker login`` stored for ``host`` in the config file."""
        config = json.loads((self.config_dir / "config.json").read_text())
        entry: dict[str, str] = config.get("auths", {}).get(host, {})
        return entry

    def build(self, context: Path, tag: str) -> str:
        """Build ``context`` (classic builder, no pull) and return the image ID."""
        self("build", "--pull=false", "-t", tag, str(context), timeout=300)
        return self.image_id(tag)

    def image_id(self, ref: str) -> str:
        return self("image", "inspect", "--format", "{{.Id}}", ref, timeout=60).stdout.strip()

    def push(self, ref: str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self("push", ref, timeout=300, check=check)

    def pull(self, ref: str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self("pull", ref, timeout=300, check=check)

    def rmi(self, *refs: str) -> None:
        self("rmi", "--force", *refs, timeout=60)


def pushed_digest(push_output: str) -> str:
    """The manifest digest in ``docker push``'s last line (``TAG: digest: sha256:… size: N``)."""
    for line in reversed(push_output.splitlines()):
        if "digest: sha256:" in line:
            return line.split("digest: ", 1)[1].split()[0]
    raise ClientError(["docker", "push"], 0, push_output, "no digest in the output")


def layer_files(blob: bytes) -> dict[str, bytes]:
    """The regular files in a gzip-compressed tar layer, by path."""
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob))) as tar:
        files = {}
        for member in tar.getmembers():
            extracted = tar.extractfile(member) if member.isfile() else None
            if extracted is not None:
                files[member.name.removeprefix("./")] = extracted.read()
        return files
