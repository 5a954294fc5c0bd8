"""``moorage config``: inspect the effective settings."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from moorage.cli.options import ConfigOption
from moorage.config import load_settings

app = typer.Typer(help="Settings commands.", no_args_is_help=True)


class OutputFormat(StrEnum):
    text = "text"
    json = "json"


def _flatten(values: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in values.items():
        if isinstance(value, Mapping):
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


@app.command()
def show(
    config: ConfigOption = None,
    output: Annotated[
        OutputFormat, typer.Option("--output", "-o", help="Output format.")
    ] = OutputFormat.text,
) -> None:
    """Print the effective settings (file + environment + defaults), passwords hidden."""
    values = load_settings(config).redacted()
    if output is OutputFormat.json:
        typer.echo(json.dumps(values, indent=2))
        return
    table = Table("key", "value", box=None)
    for key, value in _flatten(values):
        table.add_row(key, "" if value is None else str(value))
    Console(highlight=False).print(table)
