"""docker/skopeo habits: ``-h`` everywhere, ``--version``, and read-only commands that create
nothing (no data directory, no database file, no key, no superuser)."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from moorage.cli.main import app
from support.cli import moorage

# Commands that only read. Each must leave a fresh data directory exactly as it was (absent),
# and an existing one unchanged. The superuser variables prove no superuser is made either.
READ_ONLY = [
    ["db", "current"],
    ["config", "show"],
    ["user", "list"],
    ["user", "token", "list", "alice"],
    ["org", "list"],
    ["team", "list", "acme"],
    ["robot", "list", "acme"],
    ["repo", "permissions", "acme/app"],
]


def every_command_path() -> list[list[str]]:
    """Every group and command of the CLI, walked from the click tree itself (a new command
    cannot be forgotten)."""
    paths: list[list[str]] = []

    def walk(command: Any, path: list[str]) -> None:
        paths.append(path)
        if hasattr(command, "commands"):  # a group (typer bundles its own click)
            for name, child in command.commands.items():
                walk(child, [*path, name])

    walk(get_command(app), [])
    return paths


def test_the_version_option_prints_the_package_version() -> None:
    result = moorage("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"moorage {version('moorage')}"


def test_dash_h_is_help_on_every_command() -> None:
    paths = every_command_path()
    assert ["user", "token", "list"] in paths and len(paths) > 30
    runner = CliRunner()
    for path in paths:
        result = runner.invoke(app, [*path, "-h"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage" in result.output, path
    assert moorage("-h").returncode == 0  # the real console entry point too


def tree(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes() if path.is_file() else b"<dir>"
        for path in sorted(root.rglob("*"))
    }


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        "MOORAGE_DATA_DIR": str(tmp_path / "data"),
        "MOORAGE_AUTH__ENABLED": "true",
        "MOORAGE_INITIAL_SUPERUSER": "root",
        "MOORAGE_INITIAL_SUPERUSER_PASSWORD": "root-password-123",
    }


@pytest.mark.parametrize("command", READ_ONLY, ids=" ".join)
def test_a_read_only_command_creates_no_data_directory(
    command: list[str], tmp_path: Path, env: dict[str, str]
) -> None:
    result = moorage(*command, env=env, cwd=tmp_path)
    assert result.returncode in (0, 1), result.stderr  # 1: "no database" / "no such org"
    assert "Traceback" not in result.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == []


def test_read_only_commands_leave_an_existing_data_directory_unchanged(
    tmp_path: Path, env: dict[str, str]
) -> None:
    assert moorage("db", "upgrade", env=env, cwd=tmp_path).returncode == 0
    assert moorage("org", "create", "acme", env=env, cwd=tmp_path).returncode in (0, 1)
    before = tree(tmp_path)
    for command in READ_ONLY:
        result = moorage(*command, env=env, cwd=tmp_path)
        assert "Traceback" not in result.stderr, command
        assert tree(tmp_path) == before, command
