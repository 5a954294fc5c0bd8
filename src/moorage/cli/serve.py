"""``moorage serve``: run the registry with uvicorn, in one process or several workers."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from moorage.cli.options import ConfigOption
from moorage.config import CONFIG_FILE_ENV, ENV_PREFIX, Settings, load_settings
from moorage.observability import MULTIPROC_ENV, get_logger

log = get_logger(__name__)
WORKER_FACTORY = "moorage.app:asgi_from_env"


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
    if settings.workers == 1:
        _serve_single(settings)
    else:
        _serve_workers(settings, config, flags)


def _uvicorn_options(settings: Settings) -> dict[str, object]:
    # log_config=None: uvicorn's records flow through Moorage's structured root handler.
    return {
        "host": settings.host,
        "port": settings.port,
        "log_config": None,
        "access_log": False,
        "server_header": False,
    }


def _serve_single(settings: Settings) -> None:
    import uvicorn

    from moorage.app import build, tune_interpreter  # heavy: keeps `moorage --help` quick

    tune_interpreter()
    application = build(settings)
    try:
        uvicorn.run(application.asgi, **_uvicorn_options(settings))  # type: ignore[arg-type]
    finally:
        application.close()


def _serve_workers(settings: Settings, config: Path | None, flags: Mapping[str, object]) -> None:
    import uvicorn

    # Build once before any worker starts (validates storage, runs the embedded migrations,
    # so workers never race to migrate), in a child process: this supervisor stays small.
    preparation = multiprocessing.get_context("spawn").Process(target=_prepare, args=(settings,))
    preparation.start()
    preparation.join()
    if preparation.exitcode != 0:
        raise SystemExit(1)
    worker_env = {
        f"{ENV_PREFIX}{key.upper()}": str(value)
        for key, value in flags.items()
        if value is not None
    }
    worker_env[f"{ENV_PREFIX}AUTO_MIGRATE"] = "false"
    if config is not None:
        worker_env[CONFIG_FILE_ENV] = str(config)
    with _multiprocess_metrics_dir() as metrics_dir:
        worker_env[MULTIPROC_ENV] = str(metrics_dir)
        os.environ.update(worker_env)  # inherited by the spawned worker processes
        log.info("starting workers", workers=settings.workers, metrics_dir=str(metrics_dir))
        uvicorn.run(
            WORKER_FACTORY,
            factory=True,
            workers=settings.workers,
            **_uvicorn_options(settings),  # type: ignore[arg-type]
        )


def _prepare(settings: Settings) -> None:
    from moorage.app import build
    from moorage.domain.errors import MoorageError

    try:
        build(settings).close()
    except MoorageError as exc:
        sys.stderr.write(f"error: {exc}\n")
        raise SystemExit(1) from None


@contextmanager
def _multiprocess_metrics_dir() -> Iterator[Path]:
    """The directory prometheus-client workers share, emptied first (stale files skew sums)."""
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink()
        yield path
        return
    path = Path(tempfile.mkdtemp(prefix="moorage-metrics-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
