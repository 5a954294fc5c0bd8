"""``moorage serve``: check and prepare once, then hand over to the worker supervisor."""

from __future__ import annotations

import errno
import ipaddress
import json
import os
import socket
import sys
from pathlib import Path
from typing import Annotated

import typer

from moorage.cli.options import ConfigOption
from moorage.cli.supervise import SUPERVISOR_ENV
from moorage.config import CONFIG_FILE_ENV, ENV_PREFIX, Settings, load_settings
from moorage.domain.errors import ConfigError

LISTEN_BACKLOG = 2048


def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port.", min=1, max=65535)] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Directory for the SQLite database and blobs.")
    ] = None,
    config: ConfigOption = None,
    workers: Annotated[
        int | None, typer.Option(help="Worker processes (each a full server).", min=1)
    ] = None,
    reuse_port: Annotated[
        bool | None,
        typer.Option(
            "--reuse-port/--no-reuse-port",
            help="Share the port with other servers started with --reuse-port (SO_REUSEPORT).",
        ),
    ] = None,
    open_registry: Annotated[
        bool,
        typer.Option(
            "--open",
            help="No authentication at all, for local development (loopback hosts only).",
        ),
    ] = False,
) -> None:
    """Serve the registry API (flags override MOORAGE_* variables and the config file)."""
    if open_registry:  # through the environment, so the workers see it too
        os.environ[f"{ENV_PREFIX}AUTH__ENABLED"] = "false"
    flags = {
        "host": host,
        "port": port,
        "data_dir": data_dir,
        "workers": workers,
        "reuse_port": reuse_port,
    }
    settings = load_settings(config, **flags)
    # First, so that a busy port fails before the database or storage is touched. The socket
    # stays open across the exec below: the workers accept on this very socket.
    listener = listen(settings)
    _prepare(settings)
    worker_env = {
        f"{ENV_PREFIX}{key.upper()}": str(value)
        for key, value in flags.items()
        if value is not None
    }
    # Migrations ran above: workers never race to run them.
    worker_env[f"{ENV_PREFIX}AUTO_MIGRATE"] = "false"
    if config is not None:
        worker_env[CONFIG_FILE_ENV] = str(config)
    worker_env[SUPERVISOR_ENV] = json.dumps(_supervisor_spec(settings, listener))
    os.environ.update(worker_env)  # inherited by the supervisor and its workers
    sys.stdout.flush()
    sys.stderr.flush()
    # Replace this process (same pid, so signals still reach the server) with a supervisor
    # that imports only granian: the CLI's own imports would stay resident for nothing.
    os.execv(sys.executable, [sys.executable, "-m", "moorage.cli.supervise"])  # noqa: S606


def listen(settings: Settings) -> socket.socket:
    """A listening TCP socket on ``host:port``, inheritable by the supervisor.

    Without SO_REUSEPORT (unless ``reuse_port`` asks for it) a port that another process
    listens on is refused here, in one line, instead of being shared with it. SO_REUSEADDR
    only lets a restart bind while the previous run's connections linger in TIME_WAIT; on
    Linux it never lets two sockets listen on one port."""
    host, port = settings.host, settings.port
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if settings.reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(LISTEN_BACKLOG)
    except OSError as exc:
        sock.close()
        reason = exc.strerror or str(exc)
        if exc.errno == errno.EADDRINUSE:
            reason = (
                "address already in use (another process listens there; to share the port "
                "with another moorage serve on purpose, give both reuse_port: true)"
            )
        raise ConfigError(f"cannot listen on {where}: {reason}") from None
    sock.set_inheritable(True)
    return sock


def _supervisor_spec(settings: Settings, listener: socket.socket) -> dict[str, object]:
    return {
        "host": settings.host,
        "port": settings.port,
        "fd": listener.fileno(),
        "backlog": LISTEN_BACKLOG,
        "workers": settings.worker_count,
        "shutdown_timeout_s": settings.shutdown_timeout_s,
        "log_level": settings.log_level,
        "log_format": settings.log_format,
    }


def _check_schema(settings: Settings) -> None:
    """A database that ``moorage db upgrade`` has not brought to this release's schema is
    refused: the server would start, answer /healthz, and fail every request with a 500."""
    from alembic.script import ScriptDirectory

    from moorage.app import database_revision
    from moorage.db.migrate import MIGRATIONS_DIR

    scripts = ScriptDirectory(str(MIGRATIONS_DIR))
    head = scripts.get_current_head()
    current = database_revision(settings)
    if current == head:
        return
    upgrade = "run 'moorage db upgrade' (or set auto_migrate: true)"
    if current is None:
        raise ConfigError(f"database_url: the database has no Moorage schema yet: {upgrade}")
    if current in {script.revision for script in scripts.walk_revisions()}:
        raise ConfigError(
            f"database_url: the schema is at revision {current}, this release needs {head}: "
            f"{upgrade}"
        )
    # A revision this release does not know: a newer release migrated it; let it run.


def _prepare(settings: Settings) -> None:
    """Build the application once before any worker starts: runs the embedded migrations (if
    enabled), reaches the database and every storage location; a bad configuration fails
    here with one clear line (printed by ``moorage.cli.main``)."""
    from moorage.app import (  # heavy: keeps `moorage --help` quick
        FIRST_ADMIN,
        HEALTH_PROBE_KEY,
        bootstrap_first_admin,
        build,
    )
    from moorage.storage import StorageError

    if not settings.should_migrate_on_start:
        _check_schema(settings)  # before build: it may read tables already
    application = build(settings)
    try:
        application.database.ping()
        created = bootstrap_first_admin(settings, application.accounts)
        if created is not None:
            sys.stderr.write(
                f"created the superuser {FIRST_ADMIN}: its password is in {created} "
                "(log in with it, then change it: moorage user set-password)\n"
            )
        for name in application.locations.names:
            try:
                application.locations.driver(name).exists(HEALTH_PROBE_KEY)
            except StorageError as exc:
                raise ConfigError(f"storage location {name}: cannot reach it: {exc}") from None
    finally:
        application.close()
