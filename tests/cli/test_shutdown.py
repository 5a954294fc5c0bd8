"""SIGTERM and SIGINT stop a real ``moorage serve`` within 10 s, however many arrive, to the
supervisor or to its whole process group, with an upload still sending its body."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from support.cli import clean_env
from support.pgserver import free_port

pytestmark = pytest.mark.slow

STOP_WITHIN_S = 10.0
NO_AUTH = {"MOORAGE_AUTH__ENABLED": "false"}  # these tests are about stopping, not tokens


@dataclass(frozen=True)
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _children(pid: int) -> list[int]:
    """Every descendant of ``pid`` still alive (from /proc, no extra dependency)."""
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == pid:
            child = int(entry.name)
            found += [child, *_children(child)]
    return found


@contextmanager
def serve(tmp_path: Path, *args: str) -> Iterator[Server]:
    port = free_port()
    log = tmp_path / f"serve-{port}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "moorage", "serve", "--port", str(port), *args],
            env=clean_env({"MOORAGE_DATA_DIR": str(tmp_path / "data"), **NO_AUTH}),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, to signal as a whole
        )
    server = Server(process, port, log)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if httpx.get(f"{server.base_url}/v2/", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "serve did not come up"
            time.sleep(0.1)
        yield server
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _upload_still_sending(base_url: str) -> socket.socket:
    """Open an upload session and start a PATCH whose body never finishes."""
    started = httpx.post(f"{base_url}/v2/team/app/blobs/uploads/")
    assert started.status_code == 202, started.text
    location = started.headers["Location"]
    path = location if location.startswith("/") else httpx.URL(location).raw_path.decode()
    port = int(base_url.rsplit(":", 1)[1])
    conn = socket.create_connection(("127.0.0.1", port), timeout=5)
    head = (
        f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        "Content-Type: application/octet-stream\r\nContent-Length: 10485760\r\n\r\n"
    )
    conn.sendall(head.encode() + b"x" * 65536)
    return conn


def _signal_and_wait(server: Server, signum: int, count: int, *, group: bool) -> float:
    pids = [server.process.pid, *_children(server.process.pid)]
    started = time.monotonic()
    for _ in range(count):
        if group:
            os.killpg(server.process.pid, signum)
        else:
            os.kill(server.process.pid, signum)
    try:
        server.process.wait(timeout=STOP_WITHIN_S)
    except subprocess.TimeoutExpired:
        pytest.fail(
            f"serve still running {STOP_WITHIN_S}s after {count} signal(s):\n"
            + server.log.read_text()[-3000:]
        )
    elapsed = time.monotonic() - started
    deadline = time.monotonic() + 5
    while (alive := [pid for pid in pids if Path(f"/proc/{pid}").exists() and _running(pid)]) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.05)
    assert not alive, f"processes left behind: {alive}"
    return elapsed


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie is dead, only not yet reaped by its parent


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize(
    ("signum", "count", "group"),
    [
        (signal.SIGTERM, 1, False),
        (signal.SIGTERM, 20, True),
        (signal.SIGINT, 20, True),
        (signal.SIGTERM, 20, False),
    ],
    ids=["term-once", "term-burst-group", "int-burst-group", "term-burst-supervisor"],
)
def test_signals_stop_serve_with_an_upload_in_flight(
    tmp_path: Path, workers: int, signum: int, count: int, group: bool
) -> None:
    with serve(tmp_path, "--workers", str(workers)) as server:
        conn = _upload_still_sending(server.base_url)
        try:
            elapsed = _signal_and_wait(server, signum, count, group=group)
        finally:
            conn.close()
    assert elapsed < STOP_WITHIN_S


def test_repeated_signal_bursts_never_hang_the_supervisor(tmp_path: Path) -> None:
    """The race (a handler re-entering a lock the main thread holds) needs many tries: each
    round starts a server, lets it settle, then sends bursts at random moments."""
    rounds = int(os.environ.get("MOORAGE_TEST_SHUTDOWN_ROUNDS", "8"))
    for attempt in range(rounds):
        with serve(tmp_path, "--workers", str(1 + attempt % 2)) as server:
            for _ in range(attempt % 4):
                os.kill(server.process.pid, signal.SIGTERM)
                time.sleep(0.001 * attempt)
            _signal_and_wait(server, signal.SIGTERM, 20, group=True)


def _open_patch(base_url: str, length: int) -> socket.socket:
    started = httpx.post(f"{base_url}/v2/team/app/blobs/uploads/")
    assert started.status_code == 202, started.text
    port = int(base_url.rsplit(":", 1)[1])
    conn = socket.create_connection(("127.0.0.1", port), timeout=STOP_WITHIN_S)
    head = (
        f"PATCH {started.headers['Location']} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {length}\r\n\r\n"
    )
    conn.sendall(head.encode())
    return conn


def _wait_for_session_bytes(tmp_path: Path, within_s: float = 20.0) -> None:
    """Until some upload session file under the data directory holds bytes."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if any(path.stat().st_size for path in tmp_path.rglob("_uploads/*") if path.is_file()):
            return
        time.sleep(0.02)
    raise AssertionError("the PATCH never started writing")


@pytest.mark.parametrize("workers", [1, 2])
def test_a_request_in_flight_at_sigterm_is_finished(tmp_path: Path, workers: int) -> None:
    with serve(tmp_path, "--workers", str(workers)) as server:
        conn = _open_patch(server.base_url, 2 << 20)
        with conn:
            conn.sendall(b"a" * (3 << 19))
            _wait_for_session_bytes(tmp_path)  # the request is being served, not queued
            os.killpg(server.process.pid, signal.SIGTERM)
            time.sleep(0.5)
            conn.sendall(b"b" * (1 << 19))  # the rest arrives after the signal
            response = conn.recv(4096)
        assert response.startswith(b"HTTP/1.1 202"), response[:200]
        assert b"range: 0-2097151" in response.lower(), response[:400]
        _signal_and_wait(server, signal.SIGTERM, 1, group=False)


def test_a_request_that_never_ends_is_aborted_and_the_session_kept(tmp_path: Path) -> None:
    with serve(tmp_path) as server:
        started = httpx.post(f"{server.base_url}/v2/team/app/blobs/uploads/")
        location = started.headers["Location"]
        first = httpx.patch(
            f"{server.base_url}{location}",
            content=b"x" * 1000,
            headers={"Content-Type": "application/octet-stream"},
        )
        assert first.status_code == 202, first.text
        location = first.headers["Location"]
        port = server.port
        conn = socket.create_connection(("127.0.0.1", port), timeout=STOP_WITHIN_S)
        with conn:
            conn.sendall(
                f"PATCH {location} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                "Content-Type: application/octet-stream\r\nContent-Range: 1000-11485759\r\n"
                "Content-Length: 10485760\r\n\r\n".encode()
                + b"y" * 65536
            )
            _signal_and_wait(server, signal.SIGTERM, 1, group=False)
            try:
                answer = conn.recv(4096)
            except ConnectionResetError:
                answer = b""
        assert not answer.startswith(b"HTTP/1.1 2"), answer[:200]  # never reported as stored
    with serve(tmp_path) as server:  # the next start: the session is as it was before the PATCH
        status = httpx.get(f"{server.base_url}{location}")
        assert status.status_code == 204, status.text
        assert status.headers["Range"] == "0-999"


@pytest.mark.parametrize("delay_s", [0.2, 0.5])
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_the_supervisor_starts_stops_it_cleanly(
    tmp_path: Path, signum: int, delay_s: float
) -> None:
    """Between the exec and granian's own handlers (imports, preloading for two workers)."""
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "moorage", "serve", "--port", str(port), "--workers", "2"],
            env=clean_env({"MOORAGE_DATA_DIR": str(tmp_path / "data"), **NO_AUTH}),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(process, port, log)
    try:
        cmdline = Path(f"/proc/{process.pid}/cmdline")
        deadline = time.monotonic() + 30
        while b"moorage.cli.supervise" not in cmdline.read_bytes():
            assert time.monotonic() < deadline and process.poll() is None, log.read_text()
            time.sleep(0.005)
        time.sleep(delay_s)
        _signal_and_wait(server, signum, 3, group=True)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
