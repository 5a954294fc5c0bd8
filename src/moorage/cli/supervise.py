"""The process that supervises the HTTP workers (granian), started by ``moorage serve``.

``moorage serve`` validates the settings, migrates and probes storage, then replaces itself
(``exec``) with ``python -m moorage.cli.supervise``: the supervisor imports only granian and
the standard library, so it stays small (about 30 MB instead of the CLI's 50), and every
worker is a ``fork`` of it that builds the application from the ``MOORAGE_*`` environment.

What the supervisor needs comes in one JSON environment variable, ``MOORAGE_SUPERVISOR``.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import multiprocessing
import os
import select
import shutil
import signal
import socket
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
    # SIGINT too: a KeyboardInterrupt in a worker still starting is only a traceback.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
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


class SignalSafeEvent:
    """``threading.Event``'s interface, safe to ``set`` from a signal handler.

    Granian's supervisor sets a ``threading.Event`` from its SIGTERM/SIGINT handler. Python runs
    handlers in the main thread between two bytecodes, possibly while that same thread holds
    the event's lock (inside ``wait``, or inside the ``set`` of the previous signal of a burst):
    the handler then waits for a lock its own thread holds, and the supervisor hangs forever.
    Here ``set`` takes no lock: it stores a flag and writes one byte to a non-blocking pipe,
    which ``wait`` watches with ``select``; both are safe in a handler and across threads.
    """

    def __init__(self) -> None:
        self._readable, self._writable = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._flag = False

    def is_set(self) -> bool:
        return self._flag

    def set(self) -> None:
        self._flag = True
        with contextlib.suppress(BlockingIOError):  # full: a wake-up is pending already
            os.write(self._writable, b"\0")

    def clear(self) -> None:
        self._flag = False
        self._drain()

    def wait(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._flag:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            readable, _, _ = select.select([self._readable], [], [], remaining)
            if not readable:
                break
            self._drain()
        return self._flag

    def _drain(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self._readable, 4096):
                pass


def build_server(spec: dict[str, Any], stop_requested: SignalSafeEvent | None = None) -> Any:
    """The granian server for ``spec`` (not started): workers accept on the listening socket
    that ``moorage serve`` bound and passed down as ``spec["fd"]``, and the main loop is
    woken by a :class:`SignalSafeEvent`. If ``stop_requested`` is set once granian has
    installed its signal handlers, the server stops at once (a signal came before them)."""
    # Granian imports these whenever they are installed, yet it never uses anyio, and Moorage
    # runs no reloader (watchfiles) and reads no .env file (dotenv): ~2 MB in every process.
    # Not uvloop: granian registers the loops it can build at import, and workers inherit that.
    with hidden_modules(*SUPERVISOR_HIDDEN):
        from granian._granian import SocketHolder
        from granian.constants import HTTPModes, Interfaces, Loops
        from granian.log import LogLevels
        from granian.server.mp import MPServer

    listen_fd: int | None = spec.get("fd")

    class Supervisor(MPServer):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.main_loop_interrupt = SignalSafeEvent()  # type: ignore[assignment]

        def startup(self, *args: Any, **kwargs: Any) -> None:
            super().startup(*args, **kwargs)  # type: ignore[no-untyped-call]
            if stop_requested is not None and stop_requested.is_set():
                self.signal_handler_interrupt()  # type: ignore[no-untyped-call]

        def _init_shared_socket(self) -> None:
            if listen_fd is None:
                super()._init_shared_socket()  # type: ignore[no-untyped-call]
                return
            # Granian on Linux would have every worker bind its own socket with SO_REUSEPORT,
            # so that a second server on the same port starts and silently takes half the
            # connections. Workers share ours instead: the port was refused if it was busy.
            # (granian's stubs declare these None and SocketHolder without arguments)
            self._ssp = None
            self._shd = SocketHolder(listen_fd, False, self.backlog)  # type: ignore[call-arg,assignment]
            self._sfd = listen_fd  # type: ignore[assignment]
            self._sso = socket.socket(fileno=listen_fd)

    return Supervisor(
        spec.get("app", WORKER_FACTORY),  # another factory: the bench's hello-world ceiling
        factory=True,
        address=spec["host"],
        port=int(spec["port"]),
        interface=Interfaces.ASGI,
        workers=int(spec["workers"]),
        loop=Loops.uvloop,
        http=HTTPModes.http1,
        websockets=False,
        backlog=int(spec.get("backlog", 2048)),
        # A worker still busy with requests this long after SIGTERM is killed: its clients
        # see the connection close (an upload session keeps what it had before the request).
        workers_kill_timeout=int(spec.get("shutdown_timeout_s", 5)),
        log_level=LogLevels(spec.get("log_level", "info")),
        log_dictconfig=granian_log_config(
            spec.get("log_level", "info"), spec.get("log_format", "auto")
        ),
        log_access=False,  # the request middleware writes one line per request
    )


def supervise(spec: dict[str, Any]) -> None:
    # A SIGTERM/SIGINT before granian's handlers exist (while granian and, with several
    # workers, the application are imported) is kept for granian's loop, which then stops at
    # once: no KeyboardInterrupt traceback, and the metrics directory is still removed.
    stop_requested = SignalSafeEvent()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda _signum, _frame: stop_requested.set())
    workers = int(spec["workers"])
    server = build_server(spec, stop_requested)
    # Forks, not spawned interpreters: measured over the whole tree, a fork worker is ~4 MB
    # smaller in RSS (less in PSS: the supervisor's pages are shared, not rebuilt) and no
    # resource_tracker process (~12 MB) is started. The supervisor has imported granian only,
    # no application code, and runs no thread but granian's worker watchers when it forks.
    fork_workers()
    with metrics_directory(workers):
        if workers > 1:
            preload_application()
        server.serve()


def main() -> None:
    raw = os.environ.get(SUPERVISOR_ENV)
    if not raw:
        sys.stderr.write(f"error: {SUPERVISOR_ENV} is not set; start it with `moorage serve`\n")
        raise SystemExit(2)
    supervise(json.loads(raw))


if __name__ == "__main__":
    main()
