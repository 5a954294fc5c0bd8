"""``moorage serve``: check and prepare once, then hand over to the worker supervisor."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from moorage.cli.options import ConfigOption
from moorage.cli.supervise import SUPERVISOR_ENV
from moorage.config import CONFIG_FILE_ENV, ENV_PREFIX, Settings, load_settings


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
) -> None:
    """Serve the registry API (flags override MOORAGE_* variables and the config file)."""
    flags = {"host": host, "port": port, "data_dir": data_dir, "workers": workers}
    settings = load_settings(config, **flags)
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
    worker_env[SUPERVISOR_ENV] = json.dumps(_supervisor_spec(settings))
    os.environ.update(worker_env)  # inherited by the supervisor and its workers
    sys.stdout.flush()
    sys.stderr.flush()
    # Replace this process (same pid, so signals still reach the server) with a supervisor
    # that imports only granian: the CLI's own imports would stay resident for nothing.
    os.execv(sys.executable, [sys.executable, "-m", "moorage.cli.supervise"])  # noqa: S606


def _supervisor_spec(settings: Settings) -> dict[str, object]:
    return {
        "host": settings.host,
        "port": settings.port,
        "workers": settings.workers,
        "log_level": settings.log_level,
        "log_format": settings.log_format,
    }


def _prepare(settings: Settings) -> None:
    """Build the application once before any worker starts: validates storage and runs the
    embedded migrations (if enabled); a bad configuration fails here with one clear line."""
    from moorage.app import build  # heavy: keeps `moorage --help` quick
    from moorage.domain.errors import MoorageError

    try:
        build(settings).close()
    except MoorageError as exc:
        sys.stderr.write(f"error: {exc}\n")
        raise SystemExit(1) from None
