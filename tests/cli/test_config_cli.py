"""Settings problems are reported with the offending key; precedence is env over file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from moorage.config import load_settings
from support.cli import moorage


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "moorage.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("port: 5000\nfoo: 1\n", "unknown key 'foo'"),
        ("storage:\n  driver: floppy\n", "storage.driver:"),
        ("storage:\n  rooot: /srv\n", "unknown key 'storage.rooot'"),
        ("port: 70000\n", "port:"),
        ("- just\n- a list\n", "must be a mapping"),
    ],
)
def test_bad_config_file_names_the_key(tmp_path: Path, text: str, expected: str) -> None:
    result = moorage("config", "show", "--config", str(write_config(tmp_path, text)))
    assert result.returncode == 1
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"MOORAGE_PORT": "abc"}, "port:"),
        ({"MOORAGE_STORAGE__BOGUS": "1"}, "unknown key 'storage.bogus'"),
        ({"MOORAGE_LOG_FORMAT": "xml"}, "log_format:"),
    ],
)
def test_bad_environment_names_the_key(env: dict[str, str], expected: str) -> None:
    result = moorage("config", "show", env=env)
    assert result.returncode == 1
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_environment_overrides_file(tmp_path: Path) -> None:
    config = write_config(tmp_path, "port: 7000\nworkers: 3\nstorage:\n  location: eu\n")
    env = {"MOORAGE_PORT": "7100", "MOORAGE_STORAGE__ROOT": str(tmp_path / "blobs")}
    result = moorage("config", "show", "--config", str(config), "--output", "json", env=env)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["port"] == 7100
    assert shown["workers"] == 3
    assert shown["storage"] == {
        "driver": "filesystem",
        "root": str(tmp_path / "blobs"),
        "location": "eu",
        "locations": {},
        "default_location": None,
        "preference": [],
    }


def test_defaults_derive_from_data_dir(tmp_path: Path) -> None:
    result = moorage("config", "show", "-o", "json", env={"MOORAGE_DATA_DIR": str(tmp_path)})
    shown = json.loads(result.stdout)
    assert shown["database_url"] == f"sqlite:///{tmp_path}/moorage.db"
    assert shown["storage"]["root"] == f"{tmp_path}/storage"
    assert (shown["host"], shown["port"]) == ("127.0.0.1", 5000)
    assert shown["workers"] == len(os.sched_getaffinity(0))  # one per usable CPU


def test_worker_count_is_a_number_or_auto() -> None:
    memory = {
        "MOORAGE_STORAGE__LOCATIONS": '{"m": {"driver": "memory"}}',
        "MOORAGE_STORAGE__DEFAULT_LOCATION": "m",
    }
    shown = json.loads(moorage("config", "show", "-o", "json", env=memory).stdout)
    assert shown["workers"] == 1  # memory storage lives in one process
    refused = moorage("config", "show", env={**memory, "MOORAGE_WORKERS": "2"})
    assert refused.returncode == 1 and "memory keeps blobs inside one process" in refused.stderr
    for value in ("0", "257", "many", "1.5"):
        result = moorage("config", "show", env={"MOORAGE_WORKERS": value})
        assert result.returncode == 1  # a configuration error, as every other one
        assert "workers: a number from 1 to 256, or auto" in result.stderr
    assert (
        json.loads(moorage("config", "show", "-o", "json", env={"MOORAGE_WORKERS": "3"}).stdout)[
            "workers"
        ]
        == 3
    )


@pytest.mark.parametrize("output", ["json", "text"])
def test_config_show_hides_the_database_password(output: str) -> None:
    env = {"MOORAGE_DATABASE_URL": "postgresql://moorage:hunter2@db:5432/moorage"}
    result = moorage("config", "show", "--output", output, env=env)
    assert result.returncode == 0, result.stderr
    assert "hunter2" not in result.stdout
    assert "moorage:***@db" in result.stdout


def test_settings_repr_hides_the_database_password() -> None:
    settings = load_settings(database_url="postgresql://moorage:hunter2@db:5432/moorage")
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in str(settings)
    assert settings.database_url.endswith("hunter2@db:5432/moorage")  # the app still gets it
