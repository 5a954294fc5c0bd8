"""``moorage storage verify`` as an operator runs it: a real subprocess over real files."""

from __future__ import annotations

import hashlib
import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import typer
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from moorage.app import build
from moorage.cli.storage import parse_rate
from moorage.config import load_settings
from moorage.services.replication import ReplicationService
from moorage.storage import keys
from support.cli import clean_env, moorage, running_server
from support.pgserver import free_port


def _config(tmp_path: Path) -> Path:
    config = {
        "data_dir": str(tmp_path / "data"),
        "storage": {
            "default_location": "near",
            "locations": {
                "near": {"driver": "filesystem", "root": str(tmp_path / "near")},
                "far": {"driver": "filesystem", "root": str(tmp_path / "far")},
            },
        },
    }
    path = tmp_path / "moorage.yaml"
    path.write_text(json.dumps(config))
    return path


def _push(config: Path, *blobs: bytes, replicate: bool = False) -> list[str]:
    application = build(load_settings(config))
    digests = []
    with TestClient(application.asgi) as client:
        for data in blobs:
            digest = "sha256:" + hashlib.sha256(data).hexdigest()
            url = f"/v2/acme/app/blobs/uploads/?digest={digest}"
            assert client.post(url, content=data).status_code == 201
            digests.append(digest)
    if replicate:
        ReplicationService(application.model, application.locations).run_once()
    application.close()
    return digests


def _pull(config: Path, digest: str) -> tuple[int, bytes]:
    application = build(load_settings(config))
    with TestClient(application.asgi) as client:
        response = client.get(f"/v2/acme/app/blobs/{digest}")
        head = client.head(f"/v2/acme/app/blobs/{digest}")
    application.close()
    assert head.status_code == response.status_code
    return response.status_code, response.content


def _spoil(path: Path) -> bytes:
    data = bytearray(path.read_bytes())
    data[0] ^= 0xFF
    path.write_bytes(bytes(data))
    return bytes(data)


def test_verify_quarantines_reports_json_and_a_push_repairs(tmp_path: Path) -> None:
    config = _config(tmp_path)
    layer, other = b"a layer " * 40_000, b"another layer " * 1000
    digest, _sound = _push(config, layer, other, replicate=True)
    near_file = tmp_path / "near" / keys.blob_key(digest)
    spoiled = _spoil(near_file)
    assert _pull(config, digest) == (200, spoiled)  # before the scrub: bad bytes served

    result = moorage("storage", "verify", "--config", str(config), "--output", "json")

    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert (report["corrupt"], report["dry_run"], report["stopped"]) == (1, False, False)
    near, far = report["locations"]
    assert (near["location"], near["checked"], near["complete"]) == ("near", 2, True)
    assert near["bytes"] == len(layer) + len(other)
    assert (far["location"], far["checked"], far["corrupt"]) == ("far", 2, [])
    (bad,) = near["corrupt"]
    assert bad["digest"] == digest and bad["placement_removed"] is True
    assert bad["found_digest"] == "sha256:" + hashlib.sha256(spoiled).hexdigest()
    assert bad["found_size"] == bad["recorded_size"] == len(layer)
    assert (tmp_path / "near" / bad["quarantine_key"]).read_bytes() == spoiled
    assert not near_file.exists()
    assert _pull(config, digest) == (200, layer)  # from the good copy in "far"

    again = moorage("storage", "verify", "--config", str(config))
    assert again.returncode == 0, again.stderr
    assert "near: 1 blobs checked" in again.stdout and "far: 2 blobs checked" in again.stdout

    _push(config, layer)  # the genuine bytes again: stored in "near" anew
    assert near_file.read_bytes() == layer
    assert moorage("storage", "verify", "-c", str(config), "-l", "near").returncode == 0


def test_with_the_only_copy_quarantined_the_blob_is_unknown_until_pushed_again(
    tmp_path: Path,
) -> None:
    config = _config(tmp_path)
    (digest,) = _push(config, b"single copy " * 500)
    _spoil(tmp_path / "near" / keys.blob_key(digest))
    result = moorage("storage", "verify", "-c", str(config), "--location", "near")
    assert result.returncode == 1
    assert f"{digest}: holds 6000 bytes hashing to sha256:" in result.stdout
    assert "quarantined to _quarantine/sha256/" in result.stdout
    assert _pull(config, digest)[0] == 404
    _push(config, b"single copy " * 500)
    assert _pull(config, digest) == (200, b"single copy " * 500)


def test_dry_run_reports_and_leaves_everything(tmp_path: Path) -> None:
    config = _config(tmp_path)
    (digest,) = _push(config, b"leave me " * 100)
    spoiled = _spoil(tmp_path / "near" / keys.blob_key(digest))
    result = moorage("storage", "verify", "-c", str(config), "--dry-run")
    assert result.returncode == 1
    assert "dry run: left in place" in result.stdout
    assert (tmp_path / "near" / keys.blob_key(digest)).read_bytes() == spoiled
    assert not (tmp_path / "near" / "_quarantine").exists()
    assert not (tmp_path / "data" / "verify-checkpoint.json").exists()
    assert _pull(config, digest) == (200, spoiled)


def test_usage_and_configuration_errors_exit_2_with_one_line(tmp_path: Path) -> None:
    config = _config(tmp_path)
    unknown = moorage("storage", "verify", "-c", str(config), "--location", "nowhere")
    assert unknown.returncode == 2
    assert _error_lines(unknown) == [
        "error: unknown storage location 'nowhere'; configured: near, far"
    ]
    for rate in ("fast", "0", "-5MB"):
        bad_rate = moorage("storage", "verify", "-c", str(config), "--rate", rate)
        assert bad_rate.returncode == 2 and "positive byte rate" in bad_rate.stderr
    assert moorage("storage", "verify", "-c", str(config), "-o", "xml").returncode == 2
    broken = tmp_path / "broken.yaml"
    broken.write_text(json.dumps({"storage": {"locations": {"x": {"driver": "tape"}}}}))
    refused = moorage("storage", "verify", "-c", str(broken))
    assert refused.returncode == 2 and len(_error_lines(refused)) == 1
    assert "Traceback" not in refused.stderr
    shown = moorage("storage", "verify", "--help")
    assert shown.returncode == 0
    for option in ("--resume", "--rate", "--dry-run", "--output", "--location", "--progress"):
        assert option in shown.stdout
    assert moorage("storage", "--help").returncode == 0


def test_progress_goes_to_stderr_when_asked_or_on_a_terminal(tmp_path: Path) -> None:
    config = _config(tmp_path)
    _push(config, b"progress " * 100_000)
    piped = moorage("storage", "verify", "-c", str(config), "-o", "json")
    assert piped.returncode == 0 and "blobs" not in piped.stderr  # auto, stderr not a terminal
    json.loads(piped.stdout)  # stdout stays a clean JSON document
    forced = moorage("storage", "verify", "-c", str(config), "--progress", "always", "-o", "json")
    assert forced.returncode == 0
    assert "near" in forced.stderr and "1/1 blobs" in forced.stderr
    assert "900.0/900.0 kB" in forced.stderr
    json.loads(forced.stdout)
    on_a_terminal = _stderr_on_a_terminal(["storage", "verify", "-c", str(config)])
    assert "1/1 blobs" in on_a_terminal and "\x1b[" in on_a_terminal


def _error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    """stderr without the log lines (JSON) that come before an error."""
    return [line for line in result.stderr.splitlines() if not line.startswith("{")]


def _stderr_on_a_terminal(args: list[str]) -> str:
    """Run moorage with stderr on a pseudo-terminal; what it wrote there."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "moorage", *args],
        env=clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=follower,
    )
    os.close(follower)
    written = b""
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 1)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the other end closed
                break
            if not chunk:
                break
            written += chunk
    finally:
        os.close(leader)
        process.kill() if process.poll() is None else None
        process.wait(timeout=20)
    assert process.returncode == 0
    return written.decode(errors="replace")


def test_a_stopped_run_resumes_after_the_last_blob_verified(tmp_path: Path) -> None:
    config = _config(tmp_path)
    digests = _push(config, *(bytes([i]) * 1_000_000 for i in range(6)))
    checkpoint = tmp_path / "data" / "verify-checkpoint.json"
    args = ["-m", "moorage", "storage", "verify", "-c", str(config), "-l", "near", "-o", "json"]
    process = subprocess.Popen(
        [sys.executable, *args, "--rate", "1MB"],
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not checkpoint.exists() and time.monotonic() < deadline:
            time.sleep(0.05)  # saved once a blob is done and a second has passed
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, stderr
    assert "run again with --resume" in stderr
    stopped = json.loads(stdout)
    assert stopped["stopped"] is True and stopped["rate_waits"] >= 1
    first = stopped["locations"][0]
    assert first["complete"] is False and 1 <= first["checked"] < 6
    saved = json.loads(checkpoint.read_text())["locations"]["near"]
    assert saved["after"] == sorted(digests)[first["checked"] - 1]

    resumed = moorage(
        "storage", "verify", "-c", str(config), "-l", "near", "-o", "json", "--resume"
    )
    assert resumed.returncode == 0, resumed.stderr
    second = json.loads(resumed.stdout)["locations"][0]
    assert second["resumed_after"] == saved["after"]
    assert first["checked"] + second["checked"] == 6 and second["complete"] is True
    assert not checkpoint.exists()


def test_a_running_server_stops_serving_the_bad_bytes_and_serves_the_repair(
    tmp_path: Path,
) -> None:
    """Against ``moorage serve`` (whole-blob GETs read the file in 1 MiB blocks): nothing in
    the server holds on to the quarantined copy."""
    config = _config(tmp_path)
    data = b"served by a real server " * 20_000
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with running_server("--config", str(config), port=free_port()) as base:
        client = httpx.Client(base_url=base, timeout=30)
        try:
            url = f"/v2/acme/app/blobs/uploads/?digest={digest}"
            assert client.post(url, content=data).status_code == 201
            assert client.get(f"/v2/acme/app/blobs/{digest}").content == data
            spoiled = _spoil(tmp_path / "near" / keys.blob_key(digest))
            assert client.get(f"/v2/acme/app/blobs/{digest}").content == spoiled

            assert moorage("storage", "verify", "-c", str(config)).returncode == 1

            for method in ("GET", "HEAD"):
                response = client.request(method, f"/v2/acme/app/blobs/{digest}")
                assert response.status_code == 404 and response.content != spoiled
            mount = client.post(f"/v2/acme/copy/blobs/uploads/?mount={digest}&from=acme/app")
            assert mount.status_code == 202  # not mounted: an upload session instead
            assert client.post(url, content=data).status_code == 201
            served = client.get(f"/v2/acme/app/blobs/{digest}")
            assert served.status_code == 200 and served.content == data
        finally:
            client.close()


@given(
    text=st.one_of(st.text(max_size=40), st.from_regex(r"-?[0-9.]{1,30} ?[kKmMgGtTiIbB]{0,3}(/s)?"))
)
@settings(max_examples=400, deadline=None)
def test_a_rate_is_a_positive_byte_count_or_a_usage_error(text: str) -> None:
    try:
        rate = parse_rate(text)
    except typer.BadParameter as exc:
        assert len(str(exc)) <= 100  # the input is echoed, cut short
        return
    assert isinstance(rate, int) and rate > 0


def test_rates_as_operators_write_them() -> None:
    assert parse_rate("50MB") == 50_000_000 and parse_rate("50MiB/s") == 50 << 20
    assert parse_rate(" 1.5G ") == 1_500_000_000 and parse_rate("4096") == 4096
    for refused in ("\u0661\u0660MB", "9" * 400, "1e9", "0", "-1k", "MB", ""):
        with pytest.raises(typer.BadParameter):
            parse_rate(refused)
