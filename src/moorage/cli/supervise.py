"""The process that supervises the HTTP workers (granian), started by ``moorage serve``.

``moorage serve`` validates the settings, migrates and probes storage, then replaces itself
(``exec``) with ``python -m moorage.cli.supervise``: the supervisor imports only granian and
the standard library, so it stays small (about 25 MB instead of the CLI's 50), and every
worker is a fresh ``spawn`` that builds the application from the ``MOORAGE_*`` environment.

What the supervisor needs comes in one JSON environment variable, ``MOORAGE_SUPERVISOR``.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

from moorage.lean import hidden_modules

SUPERVISOR_ENV: Final = "MOORAGE_SUPERVISOR"
MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"  # the same name as moorage.observability's
WORKER_FACTORY: Final = "moorage.app:asgi_from_env"
GRANIAN_LOGGERS: Final = ("_granian", "granian.access")
SUPERVISOR_HIDDEN: Final = ("uvloop", "anyio", "watchfiles", "dotenv")


class _JsonLines(logging.Formatter):
    """The supervisor's few lines in the workers' JSON shape (event, logger, level, time)."""

    def format(self, record: logging.LogRecord) -> str:
        when = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        line = {
            "event": record.getMessage(),
            "logger": "moorage.supervisor",
            "level": record.levelname.lower(),
            "timestamp": f"{when}.{int(record.msecs):03d}Z",
        }
        return json.dumps(line)


def granian_log_config(level: str, log_format: str) -> dict[str, Any]:
    """Granian's loggers: JSON lines (or plain ones on a terminal in ``auto``/``console``);
    in the workers Moorage's root handler takes over once the application is built."""
    plain = log_format == "console" or (log_format == "auto" and sys.stderr.isatty())
    formatter: dict[str, Any] = (
        {"format": "[%(levelname)s] %(message)s"} if plain else {"()": _JsonLines}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"moorage": formatter},
        "handlers": {
            "moorage": {
                "class": "logging.StreamHandler",
                "formatter": "moorage",
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {
            name: {"handlers": ["moorage"], "level": level.upper(), "propagate": False}
            for name in GRANIAN_LOGGERS
        },
    }


@contextmanager
def metrics_directory(workers: int) -> Iterator[None]:
    """With several workers, prometheus-client shares values through files in one directory
    (emptied first: stale files would skew the sums); one worker keeps them in memory."""
    if workers == 1:
        os.environ.pop(MULTIPROC_ENV, None)
        yield
        return
    given = os.environ.get(MULTIPROC_ENV)
    path = Path(given) if given else Path(tempfile.mkdtemp(prefix="moorage-metrics-"))
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()
    os.environ[MULTIPROC_ENV] = str(path)
    try:
        yield
    finally:
        if not given:
            shutil.rmtree(path, ignore_errors=True)


def supervise(spec: dict[str, Any]) -> None:
    # Granian imports these whenever they are installed, yet its supervisor runs no event loop
    # (uvloop), no reloader (watchfiles), reads no .env file (dotenv) and never uses anyio: ~2 MB.
    # Each worker is a fresh interpreter that imports them for itself.
    with hidden_modules(*SUPERVISOR_HIDDEN):
        from granian import Granian
        from granian.constants import HTTPModes, Interfaces, Loops
        from granian.log import LogLevels

    workers = int(spec["workers"])
    # Fresh interpreters, never forks of this one: each worker imports and builds everything
    # itself, and the supervisor's pages are not counted (and copied) once per worker.
    multiprocessing.set_start_method("spawn", force=True)
    with metrics_directory(workers):
        Granian(
            WORKER_FACTORY,
            factory=True,
            address=spec["host"],
            port=int(spec["port"]),
            interface=Interfaces.ASGI,
            workers=workers,
            loop=Loops.uvloop,
            http=HTTPModes.http1,
            websockets=False,
            backlog=int(spec.get("backlog", 2048)),
            log_level=LogLevels(spec.get("log_level", "info")),
            log_dictconfig=granian_log_config(
                spec.get("log_level", "info"), spec.get("log_format", "auto")
            ),
            log_access=False,  # the request middleware writes one line per request
        ).serve()


def main() -> None:
    raw = os.environ.get(SUPERVISOR_ENV)
    if not raw:
        sys.stderr.write(f"error: {SUPERVISOR_ENV} is not set; start it with `moorage serve`\n")
        raise SystemExit(2)
    supervise(json.loads(raw))


if __name__ == "__main__":
    main()
