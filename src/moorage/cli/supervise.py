"""The process that supervises the HTTP workers (granian), started by ``moorage serve``.

``moorage serve`` validates the settings, migrates and probes storage, then replaces itself
(``exec``) with ``python -m moorage.cli.supervise``: the supervisor imports only granian and
the standard library, so it stays small (about 30 MB instead of the CLI's 50), and every
worker is a ``fork`` of it that builds the application from the ``MOORAGE_*`` environment.

What the supervisor needs comes in one JSON environment variable, ``MOORAGE_SUPERVISOR``.
"""

from __future__ import annotations

import gc
import json
import logging
import multiprocessing
import os
import shutil
import signal
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
SUPERVISOR_HIDDEN: Final = ("anyio", "watchfiles", "dotenv")


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


# Signals granian's supervisor handles; a worker installs its own once its app is built.
FORK_SIGNALS: Final = frozenset({signal.SIGINT, signal.SIGTERM, signal.SIGHUP})
_mask_before_fork: list[set[int | signal.Signals]] = []


def _hold_signals() -> None:
    _mask_before_fork.append(signal.pthread_sigmask(signal.SIG_BLOCK, FORK_SIGNALS))


def _release_signals() -> None:
    signal.pthread_sigmask(signal.SIG_SETMASK, _mask_before_fork.pop())


def _default_signals_in_worker() -> None:
    """A fork inherits the supervisor's handlers: a SIGTERM reaching a worker still building
    its application would only set a flag in the worker's copy of the supervisor, and the real
    supervisor would wait for it forever. So a worker starts with the defaults, as a spawned
    interpreter does (signals stay blocked from before the fork until then: none is lost)."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    _release_signals()


def fork_workers() -> None:
    """Start workers as forks of this process (see ``supervise``), with default signal
    handling until granian installs the worker's own."""
    multiprocessing.set_start_method("fork", force=True)
    os.register_at_fork(
        before=_hold_signals,
        after_in_parent=_release_signals,
        after_in_child=_default_signals_in_worker,
    )


def preload_application() -> None:
    """With several workers: import the application's modules here, once, before the forks,
    so that the workers share those pages (~45 MB) instead of each importing its own copy.
    Nothing is built (no connection, no thread, no file): every worker still builds its own
    application. Freezing keeps the collector from touching (and so copying) them later."""
    import moorage.app  # noqa: F401

    gc.collect()
    gc.freeze()


def supervise(spec: dict[str, Any]) -> None:
    # Granian imports these whenever they are installed, yet it never uses anyio, and Moorage
    # runs no reloader (watchfiles) and reads no .env file (dotenv): ~2 MB in every process.
    # Not uvloop: granian registers the loops it can build at import, and workers inherit that.
    with hidden_modules(*SUPERVISOR_HIDDEN):
        from granian import Granian
        from granian.constants import HTTPModes, Interfaces, Loops
        from granian.log import LogLevels

    workers = int(spec["workers"])
    # Forks, not spawned interpreters: measured over the whole tree, a fork worker is ~4 MB
    # smaller in RSS (less in PSS: the supervisor's pages are shared, not rebuilt) and no
    # resource_tracker process (~12 MB) is started. The supervisor has imported granian only,
    # no application code, and runs no thread but granian's worker watchers when it forks.
    fork_workers()
    with metrics_directory(workers):
        if workers > 1:
            preload_application()
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
