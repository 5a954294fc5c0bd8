"""``moorage signing generate-key``: a GPG key for signing squashed images."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from moorage.cli.options import ConfigOption
from moorage.config import load_settings

app = typer.Typer(help="Signing keys for squashed images.", no_args_is_help=True)


class OutputFormat(StrEnum):
    text = "text"
    json = "json"


@app.command("generate-key")
def generate_key(
    config: ConfigOption = None,
    gnupg_home: Annotated[
        Path | None,
        typer.Option(help="GnuPG home to create the key in (default: derived_images.gnupg_home)."),
    ] = None,
    name: Annotated[str, typer.Option(help="The key's user name.")] = "Moorage squashed images",
    email: Annotated[str, typer.Option(help="The key's e-mail address.")] = "moorage@localhost",
    passphrase_stdin: Annotated[
        bool,
        typer.Option(
            "--passphrase-stdin", help="Protect the key with a passphrase read from stdin."
        ),
    ] = False,
    output: Annotated[
        OutputFormat, typer.Option("--output", "-o", help="Output format.")
    ] = OutputFormat.text,
) -> None:
    """Make an RSA 3072 signing key and print the settings that use it. Refuses a GnuPG
    home that already holds a secret key (exit 1): use that one, or another home."""
    import gnupg  # type: ignore[import-untyped]

    from moorage.services.squash.signing import generate_key as make_key

    settings = load_settings(config)
    home = gnupg_home or settings.derived_images.gnupg_home or settings.data_dir / "gnupg"
    home = home.expanduser().resolve()
    if home.exists():
        existing = gnupg.GPG(gnupghome=str(home)).list_keys(secret=True)
        if existing:
            fingerprints = ", ".join(key["fingerprint"] for key in existing)
            typer.echo(f"error: {home} already holds a secret key ({fingerprints})", err=True)
            raise typer.Exit(1)
    passphrase = sys.stdin.readline().rstrip("\n") if passphrase_stdin else None
    if passphrase_stdin and not passphrase:
        typer.echo("error: the passphrase read from stdin is empty", err=True)
        raise typer.Exit(1)
    fingerprint = make_key(home, name, email, passphrase)
    if output is OutputFormat.json:
        typer.echo(json.dumps({"signing_key_id": fingerprint, "gnupg_home": str(home)}))
        return
    typer.echo(f"key {fingerprint} in {home}\nset:")
    typer.echo(f"  MOORAGE_DERIVED_IMAGES__SIGNING_KEY_ID={fingerprint}")
    typer.echo(f"  MOORAGE_DERIVED_IMAGES__GNUPG_HOME={home}")
    if passphrase is not None:
        typer.echo("  MOORAGE_DERIVED_IMAGES__SIGNING_KEY_PASSPHRASE=<the passphrase>")
