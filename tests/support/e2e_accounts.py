"""Accounts on a running test registry, made with the ``moorage`` CLI as an operator would
(on the server's own database, docs/accounts.md), and a cursor over the server's request log.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support.cli import clean_env
from support.e2e_clients import RegistryServer, run


@dataclass(frozen=True)
class Robot:
    name: str  # namespace+short
    secret: str

    @property
    def credentials(self) -> tuple[str, str]:
        return (self.name, self.secret)


@dataclass(frozen=True)
class RegistryAccounts:
    """``moorage org|robot|repo …`` against the database of ``registry`` (SQLite in its data
    directory; the server reads every decision from the database, so a change counts at the
    next request)."""

    registry: RegistryServer

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.registry.data_dir / 'moorage.db'}"

    def __call__(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        script = Path(sys.executable).parent / "moorage"
        prefix = [str(script)] if script.exists() else [sys.executable, "-m", "moorage"]
        command = [*prefix, *args, "--database-url", self.database_url]
        return run(command, timeout=60, env=clean_env(), input=input)

    def create_user(self, name: str, password: str) -> None:
        self("user", "create", name, "--password-stdin", input=password + "\n")

    def create_org(self, name: str) -> None:
        self("org", "create", name)

    def create_robot(self, namespace: str, short_name: str) -> Robot:
        """The secret is printed once, in the JSON output."""
        printed = json.loads(
            self("robot", "create", namespace, short_name, "--output", "json").stdout
        )
        return Robot(printed["name"], printed["secret"])

    def make_public(self, repository: str) -> None:
        self("repo", "visibility", repository, "public")

    def grant(self, repository: str, *, robot: str, role: str) -> None:
        self("repo", "grant", repository, "--robot", robot, "--role", role)


@dataclass
class RequestLog:
    """The requests the server logged after ``start()`` (one JSON object a line)."""

    path: Path
    offset: int = 0

    def start(self) -> RequestLog:
        """From the end of the log once it has stopped growing: a request logs its line
        after its response went out, so a fixture's last push can still be on its way."""
        size, quiet_since, give_up = -1, time.monotonic(), time.monotonic() + 5
        while time.monotonic() < give_up:
            now = self.path.stat().st_size
            if now != size:
                size, quiet_since = now, time.monotonic()
            elif time.monotonic() - quiet_since >= 0.3:
                break
            time.sleep(0.05)
        self.offset = size
        return self

    def text(self) -> str:
        with self.path.open("rb") as log:
            log.seek(self.offset)
            return log.read().decode(errors="replace")

    def requests(self) -> list[dict[str, Any]]:
        out = []
        for line in self.text().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and entry.get("event") == "request":
                out.append(entry)
        return out

    def token_requests(self) -> list[tuple[str, int]]:
        """(method, status) of every request to the token endpoint."""
        return [(r["method"], r["status"]) for r in self.requests() if r["path"] == "/v2/auth"]
