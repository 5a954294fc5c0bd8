"""Real registry servers and real registry clients for the end-to-end tests.

Servers: ``start_registry`` starts either ``moorage serve`` (the default target) or Debian's
``docker-registry`` (CNCF Distribution 2.8, the reference: ``MOORAGE_E2E_TARGET=reference``) on a
free 127.0.0.1 port with a throw-away data directory, waits for ``GET /v2/`` to answer 200, and
stops the whole process group afterwards.

Clients: every client runs as a subprocess in its own session, with a hard timeout after which its
whole process group is killed; a failure raises ``ClientError`` carrying the command line, exit
code and output. All configuration the clients read (trust policy, registries.conf, storage.conf,
containers.conf, auth file) is written into a test-owned directory: nothing under /etc is touched.
Nothing here ever talks to anything but 127.0.0.1.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

TARGET_ENV = "MOORAGE_E2E_TARGET"
TARGETS = ("moorage", "reference")
REFERENCE_BINARY = "/usr/bin/docker-registry"


def e2e_target() -> str:
    target = os.environ.get(TARGET_ENV, "moorage").strip() or "moorage"
    if target not in TARGETS:
        raise ValueError(f"{TARGET_ENV}={target!r}: expected one of {', '.join(TARGETS)}")
    return target


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# -------------------------------------------------------------------------------------------------
# Subprocesses with a hard time bound


class ClientError(AssertionError):
    """A client command failed or timed out."""

    def __init__(self, command: Sequence[str], returncode: int | None, stdout: str, stderr: str):
        self.command = list(command)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        what = "timed out" if returncode is None else f"exited with {returncode}"
        super().__init__(
            f"{' '.join(command)} {what}\n--- stdout ---\n{_tail(stdout)}\n--- stderr ---\n"
            f"{_tail(stderr)}"
        )


def _tail(text: str, limit: int = 4000) -> str:
    return text if len(text) <= limit else "…" + text[-limit:]


def run(
    command: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    check: bool = True,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``command``; kill its whole process group after ``timeout`` seconds. ``input``
    goes to its stdin (``--password-stdin``); without it stdin is /dev/null."""
    process = subprocess.Popen(
        list(command),
        env=dict(env) if env is not None else None,
        cwd=cwd,
        stdin=subprocess.DEVNULL if input is None else subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        stdout, stderr = process.communicate()
        raise ClientError(command, None, stdout, stderr) from None
    result = subprocess.CompletedProcess(list(command), process.returncode, stdout, stderr)
    if check and result.returncode != 0:
        raise ClientError(command, result.returncode, stdout, stderr)
    return result


def _kill_group(process: subprocess.Popen[Any], grace: float = 10) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


# -------------------------------------------------------------------------------------------------
# Registry servers


@dataclass
class RegistryServer:
    target: str
    host: str  # "127.0.0.1:PORT"
    process: subprocess.Popen[bytes]
    data_dir: Path
    log_path: Path
    credentials: tuple[str, str] | None = None  # a superuser's, when auth is on

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def base_url(self) -> str:
        return f"http://{self.host}"

    @property
    def is_reference(self) -> bool:
        return self.target == "reference"

    def log_tail(self, limit: int = 4000) -> str:
        try:
            return _tail(self.log_path.read_text(errors="replace"), limit)
        except OSError:
            return ""


def moorage_command(host: str, port: int, data_dir: Path) -> list[str]:
    script = Path(sys.executable).parent / "moorage"
    prefix = [str(script)] if script.exists() else [sys.executable, "-m", "moorage"]
    return [*prefix, "serve", "--host", host, "--port", str(port), "--data-dir", str(data_dir)]


def reference_config(port: int, data_dir: Path) -> str:
    config = {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {
            "filesystem": {"rootdirectory": str(data_dir)},
            "delete": {"enabled": True},
            "redirect": {"disable": True},
            "maintenance": {"uploadpurging": {"enabled": False}},
        },
        "http": {"addr": f"127.0.0.1:{port}", "secret": "moorage-e2e-not-a-secret"},
    }
    return json.dumps(config, indent=2)  # JSON is YAML


E2E_USER = "e2e-admin"
E2E_PASSWORD = "e2e-password-not-secret"  # a throw-away test registry's


def _server_env() -> dict[str, str]:
    """The current environment minus MOORAGE_* settings (the developer's own must not leak)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MOORAGE_", "REGISTRY_"))}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env["MOORAGE_AUTH__ENABLED"] = "false"  # an open registry: the protocol suites
    return env


@contextmanager
def start_registry(
    base_dir: Path,
    target: str | None = None,
    startup_timeout: float = 30,
    extra_args: Sequence[str] = (),
    data_dir: Path | None = None,
    auth: bool = False,
) -> Iterator[RegistryServer]:
    """Start a registry on a free 127.0.0.1 port; yield it once ``/v2/`` answers; stop it.
    ``data_dir`` (default: ``base_dir/data``) may be shared by several servers. With ``auth``
    (moorage only) the registry requires credentials and has the superuser ``E2E_USER``."""
    target = target or e2e_target()
    data_dir = data_dir or base_dir / "data"
    base_dir.mkdir(parents=True, exist_ok=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = base_dir / "server.log"
    port = free_port()
    if target == "reference":
        if not Path(REFERENCE_BINARY).exists():
            raise FileNotFoundError(f"{REFERENCE_BINARY} (Debian package docker-registry)")
        config_path = base_dir / "config.yml"
        config_path.write_text(reference_config(port, data_dir))
        command = [REFERENCE_BINARY, "serve", str(config_path)]
    else:
        # One worker unless the test asks for more: these suites were written against one
        # process (the default, `auto`, is one per CPU; tests/cli checks it).
        workers = [] if "--workers" in extra_args else ["--workers", "1"]
        command = [*moorage_command("127.0.0.1", port, data_dir), *workers, *extra_args]
    host = f"127.0.0.1:{port}"
    env = _server_env()
    credentials = None
    if auth and target != "reference":
        credentials = (E2E_USER, E2E_PASSWORD)
        env.update(
            {
                "MOORAGE_AUTH__ENABLED": "true",
                "MOORAGE_INITIAL_SUPERUSER": E2E_USER,
                "MOORAGE_INITIAL_SUPERUSER_PASSWORD": E2E_PASSWORD,
            }
        )
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            env=env,
            cwd=base_dir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = RegistryServer(target, host, process, data_dir, log_path, credentials)
    try:
        _wait_until_up(server, startup_timeout)
        yield server
    finally:
        _kill_group(process, grace=20)
        # Blobs add up (1 GiB for the memory test); keep only the log for a post-mortem.
        shutil.rmtree(data_dir, ignore_errors=True)


def _wait_until_up(server: RegistryServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(
                f"{server.target} registry exited with {server.process.returncode}:\n"
                f"{server.log_tail()}"
            )
        try:
            answer = httpx.get(f"{server.base_url}/v2/", timeout=2, auth=server.credentials)
            if answer.status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(
        f"{server.target} registry did not answer 200 on {server.base_url}/v2/ within {timeout}s:"
        f"\n{server.log_tail()}"
    )


# -------------------------------------------------------------------------------------------------
# Memory of a process tree, from /proc


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its living descendants."""
    out: list[int] = []
    pending = [pid]
    while pending:
        current = pending.pop()
        out.append(current)
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                children = Path(f"/proc/{current}/task/{task}/children").read_text().split()
            except OSError:
                continue
            pending.extend(int(child) for child in children)
    return out


def status_kib(pid: int, field_name: str) -> int:
    """A ``kB`` field of /proc/PID/status (VmHWM, VmRSS); 0 when the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return 0
    return 0


@dataclass
class PeakMemorySampler:
    """Samples a process tree while it runs: the sum of VmHWM (peak RSS) over its processes.

    VmHWM is the kernel's own high-water mark, so a final reading of living processes is exact;
    sampling in the background also catches children that exit before the end.
    """

    pid: int
    interval: float = 0.2
    peak_hwm_kib: dict[int, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def sample(self) -> None:
        for pid in process_tree(self.pid):
            hwm = status_kib(pid, "VmHWM")
            if hwm > self.peak_hwm_kib.get(pid, 0):
                self.peak_hwm_kib[pid] = hwm

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> PeakMemorySampler:
        self.sample()
        self._thread = threading.Thread(target=self._loop, name="vmhwm-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.sample()

    @property
    def total_kib(self) -> int:
        return sum(self.peak_hwm_kib.values())


# -------------------------------------------------------------------------------------------------
# Client configuration, in a test-owned directory


PERMISSIVE_POLICY = {"default": [{"type": "insecureAcceptAnything"}]}


@dataclass(frozen=True)
class ClientConfig:
    """Config files for containers/image-based clients (skopeo, podman), none under /etc."""

    root: Path
    registry_host: str

    @property
    def policy(self) -> Path:
        return self.root / "policy.json"

    @property
    def registries_conf(self) -> Path:
        return self.root / "registries.conf"

    @property
    def auth_file(self) -> Path:
        return self.root / "auth.json"

    @property
    def tmpdir(self) -> Path:
        return self.root / "tmp"

    @classmethod
    def write(
        cls, root: Path, registry_host: str, credentials: tuple[str, str] | None = None
    ) -> ClientConfig:
        """``credentials`` go into the auth file, as ``skopeo login`` would put them."""
        config = cls(root, registry_host)
        root.mkdir(parents=True, exist_ok=True)
        config.tmpdir.mkdir(exist_ok=True)
        config.policy.write_text(json.dumps(PERMISSIVE_POLICY))
        # No search registries (short names never reach the network); ours is plain HTTP.
        config.registries_conf.write_text(
            'unqualified-search-registries = []\nshort-name-mode = "disabled"\n\n'
            f'[[registry]]\nlocation = "{registry_host}"\ninsecure = true\n'
        )
        auths = {}
        if credentials is not None:
            encoded = base64.b64encode(":".join(credentials).encode()).decode()
            auths[registry_host] = {"auth": encoded}
        config.auth_file.write_text(json.dumps({"auths": auths}))
        return config

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "CONTAINERS_REGISTRIES_CONF": str(self.registries_conf),
                "REGISTRY_AUTH_FILE": str(self.auth_file),
                "TMPDIR": str(self.tmpdir),
            }
        )
        # Proxies must never see our loopback traffic.
        for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy"):
            env.pop(name, None)
        env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
        return env


def require_binary(name: str) -> str:
    """Path of a client binary; ``FileNotFoundError`` (turned into skip/fail by conftest)."""
    path = shutil.which(name)
    if path is None:
        raise FileNotFoundError(name)
    return path


@dataclass(frozen=True)
class Skopeo:
    config: ClientConfig
    binary: str = "skopeo"

    def __call__(
        self, *args: str, timeout: float = 180, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        command = [
            self.binary,
            "--policy",
            str(self.config.policy),
            "--tmpdir",
            str(self.config.tmpdir),
            "--command-timeout",
            f"{int(timeout)}s",
            *args,
        ]
        return run(command, timeout=timeout + 15, env=self.config.env(), check=check, input=input)

    def ref(self, repository: str, tag_or_digest: str) -> str:
        separator = "@" if ":" in tag_or_digest else ":"
        return f"docker://{self.config.registry_host}/{repository}{separator}{tag_or_digest}"

    def copy(self, src: str, dst: str, *extra: str, timeout: float = 300) -> None:
        self(
            "copy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--retry-times=0",
            *extra,
            src,
            dst,
            timeout=timeout,
        )

    def inspect(self, ref: str, *extra: str) -> dict[str, Any]:
        result = self("inspect", "--tls-verify=false", *extra, ref, timeout=60)
        loaded: dict[str, Any] = json.loads(result.stdout)
        return loaded

    def inspect_raw(self, ref: str, *extra: str) -> bytes:
        result = self("inspect", "--tls-verify=false", "--raw", *extra, ref, timeout=60)
        return result.stdout.encode()

    def list_tags(self, repository: str) -> list[str]:
        result = self(
            "list-tags",
            "--tls-verify=false",
            f"docker://{self.config.registry_host}/{repository}",
            timeout=60,
        )
        tags: list[str] = json.loads(result.stdout)["Tags"]
        return tags

    def delete(self, ref: str) -> None:
        self("delete", "--tls-verify=false", ref, timeout=60)


@dataclass(frozen=True)
class Podman:
    """Root podman with throw-away storage (vfs), cgroupfs, file events, config under ``root``."""

    config: ClientConfig
    root: Path
    runroot: Path
    binary: str = "podman"

    @classmethod
    def create(cls, config: ClientConfig, root: Path, binary: str = "podman") -> Podman:
        # podman refuses a runroot longer than 50 characters: pytest's tmp paths are longer.
        runroot = Path(tempfile.mkdtemp(prefix="e2e-podman-", dir="/tmp"))
        podman = cls(config, root, runroot, binary)
        for sub in ("storage", "tmp", "networks"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        podman.storage_conf.write_text(
            f'[storage]\ndriver = "vfs"\ngraphroot = "{root / "storage"}"\nrunroot = "{runroot}"\n'
        )
        podman.containers_conf.write_text(
            '[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
            f'events_logfile_path = "{root / "events.log"}"\n'
            f'tmp_dir = "{root / "tmp"}"\n'
            '[containers]\nlog_driver = "k8s-file"\n'
        )
        return podman

    @property
    def storage_conf(self) -> Path:
        return self.root / "storage.conf"

    @property
    def containers_conf(self) -> Path:
        return self.root / "containers.conf"

    def env(self) -> dict[str, str]:
        env = self.config.env()
        env.update(
            {
                "CONTAINERS_STORAGE_CONF": str(self.storage_conf),
                "CONTAINERS_CONF": str(self.containers_conf),
                "XDG_RUNTIME_DIR": str(self.runroot),
                "BUILDAH_ISOLATION": "chroot",
            }
        )
        return env

    def __call__(
        self,
        *args: str,
        timeout: float = 300,
        check: bool = True,
        cwd: Path | None = None,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        command = [
            self.binary,
            "--root",
            str(self.root / "storage"),
            "--runroot",
            str(self.runroot),
            "--tmpdir",
            str(self.root / "tmp"),
            "--storage-driver",
            "vfs",
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "file",
            # Even a COPY-only build sets up the network backend; keep its files out of /etc.
            "--network-config-dir",
            str(self.root / "networks"),
            *args,
        ]
        return run(command, timeout=timeout, env=self.env(), cwd=cwd, check=check, input=input)

    def image_ref(self, repository: str, tag: str) -> str:
        return f"{self.config.registry_host}/{repository}:{tag}"

    def pull(self, ref: str, timeout: float = 300) -> None:
        self("pull", "--tls-verify=false", "--signature-policy", str(self.config.policy), ref,
             timeout=timeout)  # fmt: skip

    def push(self, source: str, ref: str, *extra: str, timeout: float = 300) -> None:
        self("push", "--tls-verify=false", "--signature-policy", str(self.config.policy), *extra,
             source, ref, timeout=timeout)  # fmt: skip

    def build(self, context: Path, tag: str, *extra: str, timeout: float = 300) -> None:
        self("build", "--tls-verify=false", "--signature-policy", str(self.config.policy),
             "--format", "oci", "--pull", "-t", tag, *extra, str(context),
             timeout=timeout)  # fmt: skip

    def inspect_image(self, ref: str) -> dict[str, Any]:
        result = self("image", "inspect", ref, timeout=60)
        loaded: list[dict[str, Any]] = json.loads(result.stdout)
        return loaded[0]

    def cleanup(self) -> None:
        """Remove the throw-away storage and run directory (not `podman system reset`, which
        also touches host-wide state such as network configs)."""
        shutil.rmtree(self.root, ignore_errors=True)
        shutil.rmtree(self.runroot, ignore_errors=True)


@dataclass(frozen=True)
class Umoci:
    binary: str = "umoci"

    def __call__(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return run([self.binary, *args], timeout=timeout)


ORAS_DRIVER = Path(__file__).with_name("e2e_oras_driver.py")


def oras(
    *args: str, timeout: float = 120, credentials: tuple[str, str] | None = None
) -> dict[str, Any]:
    """Drive oras-py (a Python SDK without a CLI) in a child process, bounded in time."""
    env = dict(os.environ)
    if credentials is not None:
        env["ORAS_E2E_USERNAME"], env["ORAS_E2E_PASSWORD"] = credentials
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy"):
        env.pop(name, None)
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    result = run([sys.executable, str(ORAS_DRIVER), *args], timeout=timeout, env=env)
    loaded: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return loaded
