"""Run the ``moorage`` command as a user would: a real subprocess with its own environment."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import httpx


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The current environment minus MOORAGE_* settings (so the developer's own do not leak)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("MOORAGE_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env["MOORAGE_AUTH__ENABLED"] = "false"  # an open registry unless a test asks for auth
    env.update(extra or {})
    return env


def moorage(
    *args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "moorage", *args],
        env=clean_env(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@contextmanager
def running_server(
    *args: str, port: int, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> Iterator[str]:
    """Start ``moorage serve``, wait until ``/v2/`` answers, yield its base URL, terminate it."""
    # Output goes to a file: a full pipe would block the server.
    with tempfile.TemporaryFile(mode="w+") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "moorage", "serve", "--port", str(port), *args],
            env=clean_env(env),
            cwd=cwd,
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
        )
        base_url = f"http://127.0.0.1:{port}"
        try:
            _wait_until_up(process, base_url, output)
            yield base_url
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_until_up(
    process: subprocess.Popen[str], base_url: str, output: IO[str], timeout: float = 30
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output.seek(0)
            raise AssertionError(
                f"moorage serve exited with {process.returncode}:\n{output.read()}"
            )
        try:
            if httpx.get(f"{base_url}/v2/", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"moorage serve did not answer on {base_url} within {timeout}s")
