"""Entry point of the ``moorage`` console script and ``python -m moorage``."""

from __future__ import annotations

import sys
from typing import Annotated, NoReturn

import typer

# typer bundles its own click (pinned in pyproject.toml): its usage errors are these classes.
from typer._click import exceptions as click

from moorage import __version__
from moorage.cli import accounts, config_cmd, db, gc, serve, signing, storage, tags, worker
from moorage.domain.errors import MoorageError
from moorage.observability import redact_url_passwords

app = typer.Typer(
    name="moorage",
    help="Moorage: a container image registry.",
    no_args_is_help=True,
    # Locals can hold the database password: never print them in tracebacks.
    pretty_exceptions_show_locals=False,
    add_completion=False,
    # docker/skopeo habits: -h too, on every command (click hands it down to subcommands).
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command()(serve.serve)
app.command()(gc.gc)
app.add_typer(db.app, name="db")
app.add_typer(config_cmd.app, name="config")
app.add_typer(worker.app, name="worker")
app.add_typer(storage.app, name="storage")
app.add_typer(signing.app, name="signing")
for name, group in accounts.GROUPS:  # user, org, team, robot, repo, namespace
    app.add_typer(group, name=name)
app.add_typer(tags.tag_app, name="tag")
app.add_typer(tags.label_app, name="label")


def _print_version(requested: bool) -> None:
    if requested:
        typer.echo(f"moorage {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print the version and exit.",
            is_eager=True,
            callback=_print_version,
        ),
    ] = False,
) -> None:
    """Moorage: a container image registry."""


@app.command()
def version() -> None:
    """Print the Moorage version."""
    typer.echo(f"moorage {__version__}")


def _fail(message: str, code: int = 1) -> NoReturn:
    # One line, whatever the message: the promise of docs/configuration.md.
    typer.echo(f"error: {' '.join(message.split())}", err=True)
    sys.exit(code)


def _usage_error(exc: click.UsageError) -> NoReturn:
    if isinstance(exc, click.NoArgsIsHelpError):  # `moorage db`: the help is the answer
        exc.show()
        sys.exit(exc.exit_code)
    command = exc.ctx.command_path if exc.ctx is not None else "moorage"
    _fail(f"{exc.format_message()} (see '{command} --help')", exc.exit_code)


def _os_error(exc: OSError) -> str:
    names = [str(name) for name in (exc.filename, exc.filename2) if name is not None]
    where = f"{' -> '.join(names)}: " if names else ""
    return f"{where}{exc.strerror or exc}"


def run() -> None:
    """Run the CLI: usage errors exit 2, failures exit 1, each with one line on stderr."""
    try:
        # Not standalone: click's usage errors come here, to be printed in one line.
        code = app(standalone_mode=False)
    except click.UsageError as exc:
        _usage_error(exc)
    except click.ClickException as exc:
        _fail(exc.format_message(), exc.exit_code)
    except typer.Abort:
        _fail("aborted", 130)
    except MoorageError as exc:
        _fail(str(exc))
    except OSError as exc:  # a file or directory the settings name: missing, not writable...
        _fail(_os_error(exc))
    except Exception as exc:
        # Imported here: sqlalchemy is heavy and most commands never touch it.
        from sqlalchemy.exc import OperationalError, ProgrammingError

        if not isinstance(exc, OperationalError | ProgrammingError):
            raise
        first_line = redact_url_passwords(str(exc.orig or exc).strip().splitlines()[0])
        if isinstance(exc, ProgrammingError):  # e.g. a table missing: a schema not upgraded
            _fail(f"database error: {first_line} (has 'moorage db upgrade' run?)")
        _fail(f"cannot reach the database: {first_line}")
    sys.exit(code if isinstance(code, int) else 0)
