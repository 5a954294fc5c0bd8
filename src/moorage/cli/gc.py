"""``moorage gc``: one garbage-collection cycle (or a dry run) with a report."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated, Any

import typer

from moorage.cli.options import ConfigOption
from moorage.cli.storage import Output, ProgressMode
from moorage.config import load_settings

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from moorage.services.gc import GcReport

PHASES = (
    "objects",
    "repositories",
    "tags",
    "manifests",
    "legacy_images",
    "links",
    "blobs",
    "uploads",
)


def gc(
    config: ConfigOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report what would be deleted; delete nothing.")
    ] = False,
    output: Annotated[Output, typer.Option("--output", "-o", help="Report format.")] = Output.TEXT,
    progress: Annotated[
        ProgressMode, typer.Option("--progress", help="Progress bar on stderr.")
    ] = ProgressMode.AUTO,
) -> None:
    """Delete what nothing references any more: expired tags, then manifests, then blobs
    and their bytes in every location, then expired upload sessions (docs/gc.md).

    Safe while the registry serves pushes, and beside other GCs. Exit status: 0 done
    (the report says what went), 1 the cycle failed (run again: it resumes)."""
    from moorage.app import build

    application = build(load_settings(config))
    try:
        with _bar(progress) as bar:
            report = application.gc.run_once(dry_run=dry_run, progress=bar)
    finally:
        application.close()
    _print(report, output)


class _Bar:
    """One line per phase on stderr, counting what it deleted."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, TaskID] = {}

    def __call__(self, phase: str, done: int) -> None:
        task = self.tasks.get(phase)
        if task is None:
            task = self.tasks[phase] = self.progress.add_task(phase.replace("_", " "), total=None)
        self.progress.update(task, completed=done)


@contextmanager
def _bar(mode: ProgressMode) -> Iterator[_Bar | None]:
    if mode is ProgressMode.NEVER or (mode is ProgressMode.AUTO and not sys.stderr.isatty()):
        yield None
        return
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    console = Console(stderr=True, force_terminal=mode is ProgressMode.ALWAYS or None)
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description:<14}"),
        TextColumn("{task.completed:>8.0f}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        yield _Bar(progress)


def report_data(report: GcReport) -> dict[str, Any]:
    """The ``--output json`` document (one line)."""
    return {"job": "gc", **asdict(report)}


def _print(report: GcReport, output: Output) -> None:
    if output is Output.JSON:
        typer.echo(json.dumps(report_data(report)))
        return
    verb = "would delete" if report.dry_run else "deleted"
    data = asdict(report)
    counted = ", ".join(f"{data[name]} {name.replace('_', ' ')}" for name in PHASES)
    typer.echo(f"gc {verb}: {counted}; {report.bytes} bytes of blobs")
    for location, size in report.bytes_by_location.items():
        count = report.blobs_by_location.get(location, 0)
        typer.echo(f"  {location}: {count} objects, {size} bytes")
    if report.busy:
        typer.echo(f"{report.busy} blobs in use by a push or another GC: left for the next cycle")
    typer.echo(f"took {report.seconds:.2f} s")
