"""``moorage worker``: background jobs (replication, upload cleanup)."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any

import typer

from moorage.cli.options import ConfigOption
from moorage.config import load_settings

app = typer.Typer(help="Background jobs.", no_args_is_help=True)


class Output(StrEnum):
    TEXT = "text"
    JSON = "json"


IntervalOption = Annotated[
    float | None,
    typer.Option("--interval", min=1, help="Repeat every N seconds (default: one pass and exit)."),
]
OutputOption = Annotated[Output, typer.Option("--output", "-o", help="Report format.")]


def _printer(name: str, output: Output) -> Any:
    def report(result: Any) -> None:
        data = asdict(result)
        if output is Output.JSON:
            typer.echo(json.dumps({"job": name, **data}))
        else:
            typer.echo(f"{name}: " + ", ".join(f"{k} {v}" for k, v in data.items()))

    return report


@app.command()
def replicate(
    config: ConfigOption = None,
    interval: IntervalOption = None,
    output: OutputOption = Output.TEXT,
) -> None:
    """Copy blobs to every configured storage location and record the placements."""
    from moorage.app import build
    from moorage.workers.runner import run_job

    application = build(load_settings(config))
    job = application.replication
    try:
        run_job(job.name, job.run_once, interval=interval, report=_printer(job.name, output))
    finally:
        application.close()


@app.command("clean-uploads")
def clean_uploads(
    config: ConfigOption = None,
    interval: IntervalOption = None,
    max_age_hours: Annotated[
        float, typer.Option("--max-age-hours", min=0, help="Remove sessions older than this.")
    ] = 48,
    output: OutputOption = Output.TEXT,
) -> None:
    """Remove abandoned upload sessions and their partial data in every location."""
    from moorage.app import build
    from moorage.workers.runner import run_job

    application = build(load_settings(config))
    job = application.upload_cleanup
    max_age = timedelta(hours=max_age_hours)
    try:
        run_job(
            job.name,
            lambda: job.run_once(max_age),
            interval=interval,
            report=_printer(job.name, output),
        )
    finally:
        application.close()


@app.command("gc")
def gc_worker(
    config: ConfigOption = None,
    interval: IntervalOption = None,
    output: OutputOption = Output.TEXT,
) -> None:
    """Collect garbage (docs/gc.md): one cycle, or one every --interval seconds. Safe
    beside pushes, the GC inside `moorage serve` and other GC workers."""
    from moorage.app import build
    from moorage.workers.runner import run_job

    application = build(load_settings(config))
    job = application.gc
    try:
        run_job(job.name, job.run_once, interval=interval, report=_printer(job.name, output))
    finally:
        application.close()
