"""``moorage serve`` as a real process: one worker and several."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from support.cli import clean_env, running_server
from support.pgserver import free_port

pytestmark = pytest.mark.slow
NO_AUTH = {"MOORAGE_AUTH__ENABLED": "false"}  # about serving, not tokens


def test_serve_answers_v2_and_healthz(tmp_path: Path) -> None:
    with running_server(
        "--data-dir", str(tmp_path / "data"), port=free_port(), env=NO_AUTH
    ) as base:
        ping = httpx.get(f"{base}/v2/")
        assert ping.status_code == 200
        assert ping.headers["Docker-Distribution-API-Version"] == "registry/2.0"
        health = httpx.get(f"{base}/healthz")
        assert health.status_code == 200, health.text
        assert health.json()["status"] == "ok"
    assert (tmp_path / "data" / "moorage.db").exists()
    assert (tmp_path / "data" / "storage").is_dir()


def test_serve_with_two_workers_shares_metrics(tmp_path: Path) -> None:
    args = ("--workers", "2", "--data-dir", str(tmp_path / "data"))
    with running_server(*args, port=free_port(), env=NO_AUTH) as base:
        with httpx.Client(base_url=base) as client:
            # Fresh connections spread over the workers; the counts must add up across them.
            for _ in range(10):
                assert client.get("/v2/", headers={"Connection": "close"}).status_code == 200
            assert client.get("/healthz").status_code == 200
            metrics = client.get("/metrics")
        assert metrics.status_code == 200
        line = next(
            line
            for line in metrics.text.splitlines()
            if line.startswith('moorage_http_requests_total{method="GET",route="/v2/"')
        )
        # At least our ten requests (plus the readiness probes of running_server).
        assert float(line.split()[-1]) >= 10


def _second_serve(port: int, data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run another ``moorage serve`` on ``port``; one that starts anyway is stopped after 20 s
    and reported (it would be sharing the port)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "moorage", "serve", "--port", str(port), *args],
        env=clean_env({"MOORAGE_DATA_DIR": str(data_dir), **NO_AUTH}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f"a second serve started on busy port {port}:\n{stderr[-2000:]}")
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def test_serve_refuses_a_port_another_serve_listens_on(tmp_path: Path) -> None:
    port = free_port()
    with running_server("--data-dir", str(tmp_path / "first"), port=port, env=NO_AUTH) as base:
        session = httpx.post(f"{base}/v2/team/app/blobs/uploads/")
        assert session.status_code == 202
        second = _second_serve(port, tmp_path / "second")
        assert second.returncode == 1
        errors = [line for line in second.stderr.splitlines() if not line.startswith("{")]
        assert errors == [
            f"error: cannot listen on 127.0.0.1:{port}: address already in use (another "
            "process listens there; to share the port with another moorage serve on purpose, "
            "give both reuse_port: true)"
        ]
        # Every new connection still reaches the first server (its database knows the session).
        status_url = f"{base}{session.headers['Location']}"
        for _ in range(20):
            status = httpx.get(status_url, headers={"Connection": "close"})
            assert status.status_code == 204, status.text
    assert not (tmp_path / "second" / "moorage.db").exists()  # refused before touching anything


def test_serve_refuses_a_port_held_by_another_program(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        second = _second_serve(port, tmp_path / "data")
    assert second.returncode == 1
    assert second.stderr.splitlines()[-1].startswith(f"error: cannot listen on 127.0.0.1:{port}")
    assert "Traceback" not in second.stderr


def test_reuse_port_shares_the_port_on_purpose(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "shared"
    with (
        running_server("--reuse-port", "--data-dir", str(data), port=port, env=NO_AUTH),
        running_server("--reuse-port", "--data-dir", str(data), port=port) as base,
    ):
        # Both listen on the port, so "up" was first answered by the first server: a
        # connection the kernel hands the second may wait until its workers have started
        # (seconds on a busy machine), hence the long timeout.
        for _ in range(10):
            reply = httpx.get(f"{base}/v2/", headers={"Connection": "close"}, timeout=60)
            assert reply.status_code == 200
