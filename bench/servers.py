"""Start and stop the two registries on loopback, each in its own temporary folder, and
sample their memory (the whole process tree: ``moorage serve`` runs a supervisor and its
worker processes)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REFERENCE = "reference"
MOORAGE = "moorage"
BEFORE = "before"  # Moorage from another checkout (--before-src), for before/after rows
REFERENCE_BIN = "/usr/bin/docker-registry"
READY_TIMEOUT_S = 60.0

_REFERENCE_CONFIG = """\
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: 127.0.0.1:{port}
{auth}"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tree(pid: int) -> list[int]:
    """``pid`` and its live descendants (from /proc/<pid>/task/*/children)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                todo.extend(int(child) for child in task.read_text().split())
            except OSError:
                continue
    return found


def _status_kib(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_kib(pid: int, key: str) -> int:
    """Sum of ``key`` (VmRSS, VmHWM) over the process tree, in KiB."""
    return sum(_status_kib(each, key) for each in _tree(pid))


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by the live process tree of ``pid``."""
    total = 0
    for each in _tree(pid):
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of stat)
    return total / os.sysconf("SC_CLK_TCK")


def _pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass
class Server:
    """One running registry."""

    name: str
    port: int
    root: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    authorization: str | None = None  # what the bench's pushes and pulls send
    peak_rss_kib: int = 0
    peak_pss_kib: int = 0
    _phase_peak_kib: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _sampler: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start_sampling(self, interval_s: float = 0.1, slow_every: int = 10) -> None:
        """RSS every ``interval_s``; the process tree and PSS every ``slow_every`` samples.
        Reading ``smaps_rollup`` walks a process's page tables under its memory-map lock,
        and at 10 Hz it stalled a Python server's allocations (measured: p99 at c16 2-4x
        higher, req/s 15 % lower); ``status`` only reads counters."""

        def sample() -> None:
            count = 0
            tree: list[int] = []
            while not self._stop.wait(interval_s):
                if count % slow_every == 0:
                    tree = _tree(self.process.pid)
                    pss = sum(_pss_kib(each) for each in tree)
                    self.peak_pss_kib = max(self.peak_pss_kib, pss)
                count += 1
                rss = sum(_status_kib(each, "VmRSS") for each in tree)
                self.peak_rss_kib = max(self.peak_rss_kib, rss)
                self._phase_peak_kib = max(self._phase_peak_kib, rss)

        self._sampler = threading.Thread(target=sample, name=f"rss-{self.name}", daemon=True)
        self._sampler.start()

    def take_phase_peak_kib(self) -> int:
        """Peak sampled tree RSS since the previous call (then reset to the current RSS)."""
        peak = max(self._phase_peak_kib, tree_kib(self.process.pid, "VmRSS"))
        self._phase_peak_kib = 0
        return peak

    def hwm_kib(self) -> int:
        """Sum of VmHWM (each process's own peak RSS) over the live process tree."""
        return tree_kib(self.process.pid, "VmHWM")

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        self._stop.set()
        if self._sampler is not None:
            self._sampler.join()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)


def _launch(name: str, argv: list[str], root: Path, env: dict[str, str], port: int) -> Server:
    log_path = root / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # its own process group: killable as a tree
        )
    server = Server(name=name, port=port, root=root, process=process, log_path=log_path)
    _wait_ready(server)
    server.start_sampling()
    return server


def _wait_ready(server: Server) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited at start:\n{server.log_tail()}")
        try:
            # 401: up, with auth on (the challenge is the answer to an anonymous /v2/)
            if httpx.get(server.base_url + "/v2/", timeout=1.0).status_code in (200, 401):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"{server.name} not ready in {READY_TIMEOUT_S:.0f} s:\n{server.log_tail()}")


def start_reference(
    workdir: Path,
    binary: str = REFERENCE_BIN,
    *,
    name: str = REFERENCE,
    storage: Path | None = None,
    auth: str = "",
) -> Server:
    """Any Distribution binary (2.8 and 3.x read this configuration alike); ``storage``:
    another reference's root (a second process on the same repositories), ``auth``: an
    ``auth:`` section."""
    root = workdir / name
    root.mkdir(parents=True)
    if storage is None:
        storage = root / "storage"
        storage.mkdir()
    port = free_port()
    config = root / "config.yml"
    config.write_text(_REFERENCE_CONFIG.format(root=storage, port=port, auth=auth))
    argv = [binary, "serve", str(config)]
    return _launch(name, argv, root, dict(os.environ), port)


def moorage_command() -> list[str]:
    """``moorage`` from the interpreter's environment (the project venv)."""
    beside = Path(sys.executable).parent / "moorage"
    return [str(beside)] if beside.exists() else [sys.executable, "-m", "moorage"]


def start_moorage(
    workdir: Path,
    workers: int,
    *,
    name: str = MOORAGE,
    settings: dict[str, str] | None = None,
    pythonpath: str | None = None,
) -> Server:
    """``settings``: MOORAGE_* variables for this server (auth on by setting
    MOORAGE_AUTH__ENABLED=true); ``pythonpath``: run another checkout's ``src``."""
    root = workdir / name
    (root / "data").mkdir(parents=True)
    port = free_port()
    argv = [
        *moorage_command(),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--data-dir",
        str(root / "data"),
        "--workers",
        str(workers),
    ]
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("MOORAGE_") and key != "PROMETHEUS_MULTIPROC_DIR"
    }
    env["MOORAGE_LOG_LEVEL"] = "warning"
    env["MOORAGE_AUTH__ENABLED"] = "false"  # open, as the reference runs
    env.update(settings or {})
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    return _launch(name, argv, root, env, port)


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
