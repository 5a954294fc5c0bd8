"""Structured logging, secret redaction and Prometheus metrics.

Logging goes through the standard library root logger so that the server's and alembic's records
share the format (JSON lines or console) and the redaction of Moorage's own records. The request
id lives in a context variable (structlog.contextvars) and lands on every line of its request.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TextIO

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Histogram,
    multiprocess,
)

from moorage.lean import hidden_modules

# structlog imports rich (~4 MB with pygments) for pretty tracebacks in its console renderer;
# Moorage never shows them (format_exc_info turns exceptions into text before any renderer), so
# server processes go without it. A process that already has rich (the CLI) keeps it.
with hidden_modules("rich"):
    import structlog

LogFormat = Literal["auto", "json", "console"]
MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
REDACTED: Final = "***"

_SECRET_KEY = re.compile(
    r"passw(or)?d|passphrase|token|authori[sz]ation|secret|api[_-]?key|cookie|credential", re.I
)
# scheme://user:password@host -> keep the user, hide the password.
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]*:)[^@\s]*(?P<at>@)")
_HANDLER_MARK: Final = "_moorage_handler"


def redact_url_passwords(text: str) -> str:
    """Replace the password part of every URL in ``text``."""
    return _URL_PASSWORD.sub(rf"\g<head>{REDACTED}\g<at>", text)


def redact_value(key: str, value: Any) -> Any:
    """Redact one log or config value by key name, recursing into mappings and lists."""
    if _SECRET_KEY.search(key) and value not in (None, ""):
        return REDACTED
    if isinstance(value, str):
        return redact_url_passwords(value)
    if isinstance(value, Mapping):
        return {k: redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(key, v) for v in value]
    return value


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: hide secret-looking keys and passwords inside URLs."""
    for key in list(event_dict):
        event_dict[key] = redact_value(key, event_dict[key])
    return event_dict


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def _renderer(fmt: LogFormat, stream: TextIO) -> Any:
    use_json = fmt == "json" or (fmt == "auto" and not stream.isatty())
    if use_json:
        return structlog.processors.JSONRenderer()
    return structlog.dev.ConsoleRenderer(colors=stream.isatty())


def configure_logging(
    level: str = "info", fmt: LogFormat = "auto", stream: TextIO | None = None
) -> None:
    """Install the one log handler on the root logger (replacing a previous one of ours).

    Safe to call again: the structlog processor chain is fixed, only the handler changes, so
    loggers created earlier keep working.
    """
    out = stream if stream is not None else sys.stderr
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_processors(),
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redact_secrets,
            _renderer(fmt, out),
        ],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    setattr(handler, _HANDLER_MARK, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # The request middleware writes one line per request; the server's access log would
    # repeat it (granian's is off in the supervisor, this guards its logger anyway).
    logging.getLogger("granian.access").disabled = True
    # Alembic announces its plugins whenever it is imported: noise on every migration.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    if not structlog.is_configured():
        structlog.configure(
            processors=[
                # Drop below-level events before any processing: one per request otherwise.
                structlog.stdlib.filter_by_level,
                *_shared_processors(),
                structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
            ],
            logger_factory=structlog.stdlib.LoggerFactory(),
            wrapper_class=structlog.stdlib.BoundLogger,
            cache_logger_on_first_use=True,
        )


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger


@dataclass(frozen=True, slots=True)
class Metrics:
    """The HTTP metrics plus the registry ``/metrics`` renders.

    Each Metrics owns a fresh registry instead of prometheus-client's global one, so that building
    the application twice in one process (tests, reloads) never hits "duplicated timeseries".
    """

    registry: CollectorRegistry
    requests: Counter
    latency: Histogram
    # (method, route template, status) -> its two series; bounded like the label values.
    children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = field(default_factory=dict)

    @classmethod
    def create(cls) -> Metrics:
        """Per-process metrics, or multiprocess ones when ``PROMETHEUS_MULTIPROC_DIR`` is set.

        In multiprocess mode prometheus-client writes every value to a file in that directory
        (it decides when it is first imported, so the variable must be set before workers start);
        the collection registry then sums the files of all workers.
        """
        registry = CollectorRegistry(auto_describe=True)
        if os.environ.get(MULTIPROC_ENV):
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            target: CollectorRegistry | None = None
        else:
            for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
                registry.register(collector)
            target = registry
        labels = ("method", "route", "status")
        requests = Counter(
            "moorage_http_requests_total", "HTTP requests served.", labels, registry=target
        )
        latency = Histogram(
            "moorage_http_request_duration_seconds",
            "Time from request start to the end of the response body.",
            labels,
            registry=target,
        )
        return cls(registry=registry, requests=requests, latency=latency)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        children = self.children.get(key)
        if children is None:  # label lookups cost more than the update: once per series
            labels = (method, route, str(status))
            children = (self.requests.labels(*labels), self.latency.labels(*labels))
            self.children[key] = children
        children[0].inc()
        children[1].observe(seconds)
