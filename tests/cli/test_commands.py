"""Help, version and usage errors behave like a well-mannered CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from moorage import __version__
from moorage.cli.main import app
from support.cli import moorage

COMMANDS = [
    [],
    ["serve"],
    ["db"],
    ["db", "upgrade"],
    ["db", "current"],
    ["config"],
    ["config", "show"],
    ["version"],
]

runner = CliRunner()


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "moorage")
def test_help_exits_zero(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_version_from_python_m() -> None:
    result = moorage("version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"moorage {__version__}"


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "moorage"
    result = subprocess.run([script, "version"], capture_output=True, text=True, check=False)
    assert result.returncode == 0
    assert result.stdout.strip() == f"moorage {__version__}"


@pytest.mark.parametrize(
    "args", [["frobnicate"], ["serve", "--port", "not-a-number"], ["config", "show", "-o", "xml"]]
)
def test_usage_errors_exit_two(args: list[str]) -> None:
    assert runner.invoke(app, args).exit_code == 2
