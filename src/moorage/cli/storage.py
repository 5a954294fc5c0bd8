"""``moorage storage``: scrub and repair the stored blobs."""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from moorage.cli.options import ConfigOption

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from moorage.services.verify import CorruptBlob
    from moorage.workers.verify import VerifyReport

app = typer.Typer(help="Storage maintenance.", no_args_is_help=True)

EXIT_CORRUPT = 1
EXIT_UNUSABLE = 2
EXIT_STOPPED = 130  # as a shell reports a command stopped by SIGINT


class Output(StrEnum):
    TEXT = "text"
    JSON = "json"


class ProgressMode(StrEnum):
    AUTO = "auto"  # a bar when stderr is a terminal, as docker and skopeo do
    ALWAYS = "always"
    NEVER = "never"


def parse_rate(value: str | None) -> int | None:
    """``50MB``, ``50MiB``, ``1.5G``, ``800k/s`` or a byte count, as bytes per second (ASCII
    only: a short size, not an arbitrary number)."""
    if value is None:
        return None
    from pydantic import ByteSize, TypeAdapter, ValidationError

    text = value.strip().removesuffix("/s")
    rate = 0
    if text.isascii() and len(text) <= 32:
        try:
            rate = int(TypeAdapter(ByteSize).validate_python(text))
        except (ValidationError, ValueError, OverflowError):
            rate = 0
    if rate <= 0:
        shown = repr(value)[:40]
        raise typer.BadParameter(f"{shown} is not a positive byte rate such as 50MB")
    return rate


@app.command()
def verify(
    config: ConfigOption = None,
    location: Annotated[
        list[str] | None,
        typer.Option(
            "--location",
            "-l",
            metavar="NAME",
            help="Only this location (repeatable). Default: all.",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report corrupt blobs, quarantine nothing.")
    ] = False,
    resume: Annotated[
        bool,
        typer.Option("--resume", help="Continue after the last blob the previous run verified."),
    ] = False,
    rate: Annotated[
        str | None,
        typer.Option(
            "--rate",
            help="Read at most this many bytes a second, e.g. 50MB or 20MiB.",
            metavar="SIZE",
        ),
    ] = None,
    output: Annotated[Output, typer.Option("--output", "-o", help="Report format.")] = Output.TEXT,
    progress: Annotated[
        ProgressMode, typer.Option("--progress", help="Progress bar on stderr.")
    ] = ProgressMode.AUTO,
) -> None:
    """Re-hash every stored blob; quarantine the copies whose bytes do not match their digest.

    Exit status:
    0 every blob checked is sound;
    1 corrupt blobs were found (and quarantined, unless --dry-run), or some were unreadable;
    2 bad usage or configuration, or the database or storage is unreachable;
    130 stopped by a signal (run again with --resume).
    """
    from moorage.workers.verify import VerifyRequest

    request = VerifyRequest(
        locations=tuple(location or ()), dry_run=dry_run, resume=resume, rate=parse_rate(rate)
    )
    with _unusable_as_exit_2():
        from moorage.app import build
        from moorage.config import load_settings

        application = build(load_settings(config))
    try:
        with _unusable_as_exit_2():
            names = application.verify.location_names(request.locations)
            stop = threading.Event()
            with _stopping_on_signals(stop), _progress_bar(progress, names) as bar:
                report = application.verify.run(request, bar, stop)
    finally:
        application.close()
    _print(report, output)
    if report.stopped:
        typer.echo("stopped: run again with --resume to continue", err=True)
        raise typer.Exit(EXIT_STOPPED)
    if report.corrupt or report.unreadable:
        raise typer.Exit(EXIT_CORRUPT)


@app.command()
def usage(
    config: ConfigOption = None,
    output: Annotated[Output, typer.Option("--output", "-o", help="Report format.")] = Output.TEXT,
    no_gc: Annotated[
        bool,
        typer.Option("--no-gc", help="Skip what the next GC would free (its dry run reads more)."),
    ] = False,
) -> None:
    """Per storage location: blobs and bytes recorded there, upload sessions open and what
    they received, and what the next garbage collection would free.

    Exit status: 0 reported; 2 bad usage or configuration, or the database is unreachable.
    """
    with _unusable_as_exit_2():
        from moorage.app import build
        from moorage.config import load_settings

        application = build(load_settings(config))
    try:
        with _unusable_as_exit_2():
            report = application.storage_usage.report(include_gc=not no_gc)
    finally:
        application.close()
    if output is Output.JSON:
        typer.echo(json.dumps(report.as_document()))
        return
    for row in report.locations:
        line = (
            f"{row.location}: {row.blobs} blobs, {row.bytes} bytes; "
            f"{row.uploads} uploads open, {row.upload_bytes} bytes"
        )
        if row.gc_blobs is not None:
            line += f"; next GC frees {row.gc_blobs} blobs, {row.gc_bytes} bytes"
        typer.echo(line)
    if report.next_gc is not None:
        gc = report.next_gc
        typer.echo(
            f"next GC: {gc.tags} tags, {gc.manifests} manifests, {gc.blobs} blobs, "
            f"{gc.bytes} bytes, {gc.uploads} expired uploads"
        )


@contextmanager
def _unusable_as_exit_2() -> Iterator[None]:
    """Configuration, database or storage trouble: one line and exit 2 (1 means corrupt)."""
    from sqlalchemy.exc import OperationalError

    from moorage.domain.errors import MoorageError
    from moorage.observability import redact_url_passwords
    from moorage.storage import StorageError, UnknownStorageLocationError

    try:
        yield
    except (MoorageError, StorageError, UnknownStorageLocationError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_UNUSABLE) from None
    except OperationalError as exc:
        first_line = str(exc.orig or exc).strip().splitlines()[0]
        typer.echo(
            f"error: cannot reach the database: {redact_url_passwords(first_line)}", err=True
        )
        raise typer.Exit(EXIT_UNUSABLE) from None


@contextmanager
def _stopping_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT/SIGTERM end the pass after the chunk being read; the checkpoint is kept."""
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    for signum in previous:
        signal.signal(signum, lambda *_: stop.set())
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class _Bar:
    """A rich progress bar (bytes, speed, blobs) per location, on stderr."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, TaskID] = {}
        self.blobs: dict[str, int] = {}

    def location_started(self, location: str, blobs: int, size: int) -> None:
        self.blobs[location] = 0
        self.tasks[location] = self.progress.add_task(
            location, total=size, blobs=f"0/{blobs}", expected=blobs
        )

    def advanced(self, location: str, size: int) -> None:
        self.progress.advance(self.tasks[location], size)

    def blob_verified(self, location: str, digest: str, corrupt: CorruptBlob | None) -> None:
        self.blobs[location] += 1
        task = self.tasks[location]
        expected = self.progress.tasks[task].fields["expected"]
        self.progress.update(task, blobs=f"{self.blobs[location]}/{expected}")
        if corrupt is not None:
            self.progress.console.print(f"[red]corrupt[/red] {location}: {digest}")


@contextmanager
def _progress_bar(mode: ProgressMode, names: tuple[str, ...]) -> Iterator[_Bar | None]:
    if mode is ProgressMode.NEVER or (mode is ProgressMode.AUTO and not sys.stderr.isatty()):
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    console = Console(stderr=True, force_terminal=mode is ProgressMode.ALWAYS or None)
    width = max(len(name) for name in names)
    with Progress(
        TextColumn(f"{{task.description:<{width}}}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[blobs]} blobs"),
        console=console,
    ) as progress:
        yield _Bar(progress)


def report_data(report: VerifyReport) -> dict[str, Any]:
    """The ``--output json`` document."""
    return {
        "dry_run": report.dry_run,
        "stopped": report.stopped,
        "corrupt": report.corrupt,
        "unreadable": report.unreadable,
        "rate_waits": report.rate_waits,
        "rate_wait_s": report.rate_wait_s,
        "locations": [asdict(location) for location in report.locations],
    }


def _print(report: VerifyReport, output: Output) -> None:
    if output is Output.JSON:
        typer.echo(json.dumps(report_data(report)))
        return
    for location in report.locations:
        state = "" if location.complete else " (stopped)"
        typer.echo(
            f"{location.location}: {location.checked} blobs checked, {location.bytes} bytes, "
            f"{len(location.corrupt)} corrupt{state}"
        )
        for blob in location.corrupt:
            typer.echo(f"  {_describe(blob, report.dry_run)}")
        for unreadable in location.unreadable:
            typer.echo(f"  {unreadable.digest}: unreadable, left in place: {unreadable.error}")
    if not report.locations:
        typer.echo("nothing to verify: every location was done by the run resumed")
    if report.rate_waits:
        typer.echo(f"rate limit: reads waited {report.rate_wait_s:.1f} s in all")


def _describe(blob: CorruptBlob, dry_run: bool) -> str:
    found = f"{blob.digest}: holds {blob.found_size} bytes hashing to {blob.found_digest}"
    if dry_run:
        return f"{found} (dry run: left in place)"
    if blob.error is not None:
        return f"{found}; {blob.error}"
    where = f"quarantined to {blob.quarantine_key}" if blob.quarantine_key else "already moved"
    return f"{found}; {where}" + ("" if blob.placement_removed else " (no placement recorded)")
