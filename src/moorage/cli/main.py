"""Entry point of the ``moorage`` console script and ``python -m moorage``."""

from __future__ import annotations

import sys

import typer

from moorage import __version__
from moorage.cli import config_cmd, db, serve, storage, worker
from moorage.domain.errors import MoorageError
from moorage.observability import redact_url_passwords

app = typer.Typer(
    name="moorage",
    help="Moorage: a container image registry.",
    no_args_is_help=True,
    # Locals can hold the database password: never print them in tracebacks.
    pretty_exceptions_show_locals=False,
    add_completion=False,
)
app.command()(serve.serve)
app.add_typer(db.app, name="db")
app.add_typer(config_cmd.app, name="config")
app.add_typer(worker.app, name="worker")
app.add_typer(storage.app, name="storage")


@app.command()
def version() -> None:
    """Print the Moorage version."""
    typer.echo(f"moorage {__version__}")


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    sys.exit(1)


def run() -> None:
    """Run the CLI: usage errors exit 2, failures exit 1 with one line on stderr."""
    try:
        app()
    except MoorageError as exc:
        _fail(str(exc))
    except Exception as exc:
        # Imported here: sqlalchemy is heavy and most commands never touch it.
        from sqlalchemy.exc import OperationalError

        if not isinstance(exc, OperationalError):
            raise
        first_line = str(exc.orig or exc).strip().splitlines()[0]
        _fail(f"cannot reach the database: {redact_url_passwords(first_line)}")
