"""A throw-away PostgreSQL cluster for tests, and database creation on any server.

The cluster lives in a temporary directory, listens only on 127.0.0.1 on a free port (its unix
socket stays in the temporary directory) and trusts local connections. PostgreSQL refuses to run
as root, so under root every server command runs as the ``postgres`` user via ``runuser``.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

SERVER_USER = "postgres"
TEST_DATABASE = "moorage_test"


def find_bin_dir() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``: PATH first, then Debian's layout."""
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(initdb).resolve().parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda path: int(Path(path).parent.name) if Path(path).parent.name.isdigit() else 0,
        reverse=True,
    )
    for candidate in candidates:
        if (Path(candidate) / "initdb").exists() and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ThrowawayCluster:
    bin_dir: Path
    base_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="moorage-pg-")))
    port: int = field(default_factory=free_port)

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def admin_url(self) -> str:
        return f"postgresql://{SERVER_USER}@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", SERVER_USER, "--", *command]
        result = subprocess.run(
            command, cwd=self.base_dir, capture_output=True, text=True, timeout=120, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({result.returncode}): {result.stderr.strip()}")

    def start(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.base_dir, user=SERVER_USER)
        self._run("initdb", "-D", str(self.data_dir), "-U", SERVER_USER, "--auth=trust",
                  "-E", "UTF8", "--locale=C", "--no-sync")  # fmt: skip
        options = (
            f"-h 127.0.0.1 -p {self.port} -k {self.base_dir} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        log_file = str(self.base_dir / "server.log")
        self._run("pg_ctl", "-D", str(self.data_dir), "-l", log_file, "-o", options, "-w",
                  "-t", "60", "start")  # fmt: skip

    def stop(self) -> None:
        try:
            if (self.data_dir / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.base_dir, ignore_errors=True)


def start_cluster(bin_dir: Path, attempts: int = 3) -> ThrowawayCluster:
    """Start a cluster, retrying on a fresh port if another process grabbed the chosen one."""
    error: Exception | None = None
    for _ in range(attempts):
        cluster = ThrowawayCluster(bin_dir)
        try:
            cluster.start()
            return cluster
        except RuntimeError as exc:
            error = exc
            cluster.stop()
    raise RuntimeError(f"could not start a PostgreSQL cluster: {error}")


def with_database(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def _admin(url: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(with_database(url, "postgres"), autocommit=True, connect_timeout=10)


def create_database(server_url: str, name: str | None = None) -> str:
    """Create an empty database on the server of ``server_url``; returns its URL."""
    name = name or f"moorage_t_{uuid.uuid4().hex[:12]}"
    with _admin(server_url) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return with_database(server_url, name)


def drop_database(server_url: str, name: str) -> None:
    with _admin(server_url) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
