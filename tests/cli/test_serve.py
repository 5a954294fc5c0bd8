"""``moorage serve`` as a real process: one worker and several."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from support.cli import running_server
from support.pgserver import free_port

pytestmark = pytest.mark.slow


def test_serve_answers_v2_and_healthz(tmp_path: Path) -> None:
    with running_server("--data-dir", str(tmp_path / "data"), port=free_port()) as base:
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
    with running_server(*args, port=free_port()) as base:
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
