"""Options shared by several commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from moorage.config import CONFIG_FILE_ENV

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        envvar=CONFIG_FILE_ENV,
        help="YAML settings file (MOORAGE_* environment variables override it).",
        exists=True,
        dir_okay=False,
        resolve_path=True,
    ),
]
DatabaseUrlOption = Annotated[
    str | None,
    typer.Option("--database-url", help="Database URL (sqlite:///... or postgresql://...)."),
]
