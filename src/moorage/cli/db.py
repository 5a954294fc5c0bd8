"""``moorage db``: schema migrations."""

from __future__ import annotations

from pathlib import Path

import typer

from moorage.cli.options import ConfigOption, DatabaseUrlOption
from moorage.config import load_settings
from moorage.observability import configure_logging, redact_url_passwords

app = typer.Typer(help="Database schema commands.", no_args_is_help=True)


@app.command()
def upgrade(config: ConfigOption = None, database_url: DatabaseUrlOption = None) -> None:
    """Create or upgrade the database schema to the newest revision (safe to repeat)."""
    from moorage.app import upgrade_database  # heavy; keeps `moorage --help` quick

    settings = load_settings(config, database_url=database_url)
    configure_logging(settings.log_level, settings.log_format)
    revision = upgrade_database(settings)
    url = redact_url_passwords(settings.database_url)
    typer.echo(f"{url} is at revision {revision}")


@app.command()
def current(config: ConfigOption = None, database_url: DatabaseUrlOption = None) -> None:
    """Print the schema revision the database is at."""
    from moorage.app import database_revision  # heavy; keeps `moorage --help` quick
    from moorage.db.engine import sqlite_file

    settings = load_settings(config, database_url=database_url)
    configure_logging(settings.log_level, settings.log_format)
    database_file = sqlite_file(settings.database_url)
    if database_file is not None and not Path(database_file).expanduser().exists():
        revision = None  # asking must not create the file (nor its directory)
    else:
        revision = database_revision(settings)
    typer.echo(
        revision if revision is not None else "none (empty database: run 'moorage db upgrade')"
    )
