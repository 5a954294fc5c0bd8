"""Every configuration mistake stops ``config show``, ``db upgrade`` and ``serve`` with one line
naming the key and a non-zero exit code: no traceback, whatever the source (file, environment,
flag) and however deep the mistake would otherwise surface (boto3, SQLAlchemy, granian)."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from support.cli import moorage
from support.pgserver import free_port


@dataclass(frozen=True)
class Mistake:
    name: str
    expected: str  # the start of the error line: the key, then what is wrong
    yaml: str = ""
    env: dict[str, str] = field(default_factory=dict)
    args: tuple[str, ...] = ()


def s3(**keys: str) -> str:
    lines = "".join(f"      {key}: {value}\n" for key, value in keys.items())
    return f"storage:\n  locations:\n    cloud:\n      driver: s3\n{lines}"


MISTAKES = [
    Mistake(
        "s3 without secret_key",
        "storage.locations.cloud.secret_key: required when access_key is set",
        yaml=s3(bucket="b", access_key="AKIA", endpoint_url="http://127.0.0.1:9"),
    ),
    Mistake(
        "s3 without access_key",
        "storage.locations.cloud.access_key: required when secret_key is set",
        yaml=s3(bucket="b", secret_key="s3cr3t"),
    ),
    Mistake("s3 without bucket", "storage.locations.cloud.bucket: required", yaml=s3(prefix="x")),
    Mistake(
        "s3 bad bucket",
        "storage.locations.cloud.bucket: must be",
        yaml=s3(bucket='"no spaces/or slashes"'),
    ),
    Mistake(
        "s3 bad endpoint",
        "storage.locations.cloud.endpoint_url: must be an http:// or https:// URL",
        yaml=s3(bucket="b", endpoint_url='"not a url"'),
    ),
    Mistake(
        "s3 endpoint with a bad port",
        "storage.locations.cloud.endpoint_url: must be",
        yaml=s3(bucket="b", endpoint_url="http://127.0.0.1:99999"),
    ),
    Mistake(
        "s3 bad region",
        "storage.locations.cloud.region: must be a region name",
        yaml=s3(bucket="b", region='"eu west"'),
    ),
    Mistake(
        "s3 bad prefix",
        "storage.locations.cloud.prefix: not a valid key prefix",
        yaml=s3(bucket="b", prefix='"../escape"'),
    ),
    Mistake(
        "s3 key on a filesystem location",
        "storage.locations.disk.bucket: only for s3 locations",
        yaml="storage:\n  locations:\n    disk:\n      root: /tmp\n      bucket: b\n",
    ),
    Mistake(
        "s3 in the environment",
        "storage.locations.cloud.bucket: required",
        env={"MOORAGE_STORAGE__LOCATIONS__CLOUD__DRIVER": "s3"},
    ),
    Mistake(
        "bad location name",
        "storage.locations.Bad Name: not a valid location name",
        yaml="storage:\n  locations:\n    Bad Name:\n      driver: memory\n",
    ),
    Mistake(
        "default_location naming no location (single)",
        "storage.default_location: 'elsewhere' is not a location (known: local)",
        yaml="storage:\n  default_location: elsewhere\n",
    ),
    Mistake(
        "default_location naming no location (several)",
        "storage.default_location: 'c' is not a location (known: a, b)",
        yaml=(
            "storage:\n  default_location: c\n  locations:\n"
            "    a: {driver: memory}\n    b: {driver: memory}\n"
        ),
    ),
    Mistake(
        "preference naming no location",
        "storage.preference: names unknown locations: nowhere",
        env={"MOORAGE_STORAGE__PREFERENCE": '["nowhere"]'},
    ),
    Mistake(
        "database_url with an unknown driver",
        "database_url: must be sqlite:///<path> or postgresql://",
        env={"MOORAGE_DATABASE_URL": "postgresql+nosuchdriver://u:hunter2@db/moorage"},
    ),
    Mistake(
        "database_url with a port that is not a number",
        "database_url: must be",
        env={"MOORAGE_DATABASE_URL": "postgresql://u:hunter2@db:notaport/moorage"},
    ),
    Mistake(
        "database_url without a database",
        "database_url: must be",
        env={"MOORAGE_DATABASE_URL": "postgresql://u:hunter2@db:5432"},
    ),
    Mistake("database_url not a URL", "database_url: must be", yaml="database_url: moorage.db\n"),
    Mistake("host not an IP address", "host: must be an IP address", env={"MOORAGE_HOST": "x.y"}),
    # {file}: an existing file, not a directory
    Mistake("data_dir is a file", "data_dir: ", env={"MOORAGE_DATA_DIR": "{file}"}),
    Mistake("storage.root under a file", "storage.root: ", yaml="storage:\n  root: {file}/blobs\n"),
    Mistake(
        "SQLite database under a file",
        "database_url: ",
        env={"MOORAGE_DATABASE_URL": "sqlite:///{file}/moorage.db"},
    ),
    Mistake(
        "memory location with several workers",
        "storage.locations.ram.driver: memory keeps blobs inside one process",
        yaml="workers: 2\nstorage:\n  locations:\n    ram: {driver: memory}\n",
    ),
    Mistake("unknown key", "unknown key 'prot'", yaml="prot: 5000\n"),
    Mistake(
        "bad type",
        "shutdown_timeout_s: Input should be a valid integer",
        yaml="shutdown_timeout_s: many\n",
    ),
    Mistake("bad worker count", "workers: a number from 1 to 256, or auto", yaml="workers: many\n"),
    Mistake(
        "nested section not JSON",
        "storage: MOORAGE_STORAGE is not valid JSON",
        env={"MOORAGE_STORAGE": "{root: /srv"},
    ),
    Mistake("config file not UTF-8", "config file ", yaml="port: \udcff\n"),
    Mistake("config file not YAML", "config file ", yaml="port: [5000\n"),
    Mistake("config file a list", "config file ", yaml="- port\n"),
    Mistake(
        "shutdown_timeout_s out of range",
        "shutdown_timeout_s: ",
        env={"MOORAGE_SHUTDOWN_TIMEOUT_S": "0"},
    ),
]


def _run(command: list[str], mistake: Mistake, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    afile = tmp_path / "a-file"
    afile.write_text("not a directory\n")
    env = {"MOORAGE_DATA_DIR": str(tmp_path / "data")}
    env.update({key: value.replace("{file}", str(afile)) for key, value in mistake.env.items()})
    args = [*command, *mistake.args]
    if mistake.yaml:
        config = tmp_path / "moorage.yaml"
        config.write_bytes(
            mistake.yaml.replace("{file}", str(afile)).encode("utf-8", errors="surrogateescape")
        )
        args += ["--config", str(config)]
    return moorage(*args, env=env, timeout=60)


def _assert_one_line(result: subprocess.CompletedProcess[str], expected: str) -> None:
    assert result.returncode == 1, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr and "╭" not in result.stderr, result.stderr[-3000:]
    # Log lines (JSON, one per event) may come first: exactly one other line, the error.
    lines = [line for line in result.stderr.splitlines() if not line.startswith("{")]
    assert len(lines) == 1, result.stderr[-3000:]
    assert lines[0].startswith(f"error: {expected}"), lines[0]
    assert "hunter2" not in result.stderr  # a password in a bad URL is never repeated


@pytest.mark.parametrize("mistake", MISTAKES, ids=lambda m: m.name)
def test_config_show_names_the_key(mistake: Mistake, tmp_path: Path) -> None:
    _assert_one_line(_run(["config", "show"], mistake, tmp_path), mistake.expected)


@pytest.mark.slow
@pytest.mark.parametrize("mistake", MISTAKES, ids=lambda m: m.name)
def test_db_upgrade_names_the_key(mistake: Mistake, tmp_path: Path) -> None:
    _assert_one_line(_run(["db", "upgrade"], mistake, tmp_path), mistake.expected)


@pytest.mark.slow
@pytest.mark.parametrize("mistake", MISTAKES, ids=lambda m: m.name)
def test_serve_names_the_key(mistake: Mistake, tmp_path: Path) -> None:
    # A server that started despite the mistake would run until the timeout: the test fails.
    result = _run(["serve", "--port", str(free_port())], mistake, tmp_path)
    _assert_one_line(result, mistake.expected)


@pytest.mark.slow
def test_serve_refuses_an_s3_location_it_cannot_reach(tmp_path: Path) -> None:
    """Nothing listens on port 9: the location is named, in one line, before serving."""
    config = tmp_path / "moorage.yaml"
    config.write_text(
        s3(bucket="b", endpoint_url="http://127.0.0.1:9", access_key="a", secret_key="b")
    )
    result = moorage(
        "serve",
        "--port",
        str(free_port()),
        "--config",
        str(config),
        env={"MOORAGE_DATA_DIR": str(tmp_path / "data")},
        timeout=60,
    )
    _assert_one_line(result, "storage location cloud: cannot reach it")


@pytest.mark.slow
def test_serve_refuses_a_database_it_cannot_reach(tmp_path: Path) -> None:
    env = {
        "MOORAGE_DATA_DIR": str(tmp_path / "data"),
        "MOORAGE_DATABASE_URL": "postgresql://moorage:hunter2@127.0.0.1:9/moorage",
    }
    result = moorage("serve", "--port", str(free_port()), env=env, timeout=60)
    _assert_one_line(result, "cannot reach the database")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["serve", "--port", "70000"], "Invalid value for '--port'"),
        (["serve", "--workers", "0"], "Invalid value for '--workers'"),
        (["config", "show", "--config", "/no/such/moorage.yaml"], "Invalid value for '--config'"),
        (["serve", "--frobnicate"], "No such option: --frobnicate"),
    ],
)
def test_bad_flags_are_one_line_too(args: list[str], expected: str) -> None:
    result = moorage(*args)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"error: {expected}"), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_valid_s3_settings_load_and_hide_the_secret(tmp_path: Path) -> None:
    config = tmp_path / "moorage.yaml"
    config.write_text(
        s3(
            bucket="moorage",
            endpoint_url="http://127.0.0.1:8333",
            region="eu-west-1",
            access_key="AKIA",
            secret_key="hunter2",
            prefix="reg/one",
        )
    )
    result = moorage("config", "show", "-o", "json", "--config", str(config))
    assert result.returncode == 0, result.stderr
    cloud = json.loads(result.stdout)["storage"]["locations"]["cloud"]
    assert cloud["bucket"] == "moorage"
    assert cloud["secret_key"] == "***"
    assert "hunter2" not in result.stdout


@pytest.mark.parametrize(
    "text",
    ["port: 5000\nstorage:\n  root: /a\nport: 5001\n", "storage:\n  root: /a\n  root: /b\n"],
)
def test_a_key_given_twice_in_the_file_is_a_mistake(tmp_path: Path, text: str) -> None:
    """PyYAML would keep the last one silently (a second ``storage:`` replaces the first)."""
    config = tmp_path / "moorage.yaml"
    config.write_text(text)
    result = moorage("config", "show", "--config", str(config))
    _assert_one_line(result, f"config file {config}: not valid YAML: key ")
    assert "given twice" in result.stderr


def test_yaml_merge_keys_still_work(tmp_path: Path) -> None:
    config = tmp_path / "moorage.yaml"
    config.write_text("storage:\n  <<: {root: /srv/a, location: eu}\n  root: /srv/b\n")
    result = moorage("config", "show", "-o", "json", "--config", str(config))
    assert result.returncode == 0, result.stderr
    storage = json.loads(result.stdout)["storage"]
    assert (storage["root"], storage["location"]) == ("/srv/b", "eu")


@pytest.mark.slow
@pytest.mark.postgres
def test_serve_refuses_a_database_without_the_schema(
    tmp_path: Path, fresh_postgres_url: str
) -> None:
    """Without `moorage db upgrade`, serve used to start, pass /healthz and answer 500s."""
    env = {"MOORAGE_DATA_DIR": str(tmp_path / "data"), "MOORAGE_DATABASE_URL": fresh_postgres_url}
    refused = moorage("serve", "--port", str(free_port()), env=env, timeout=60)
    _assert_one_line(refused, "database_url: the database has no Moorage schema yet")
    assert "moorage db upgrade" in refused.stderr
    upgraded = moorage("db", "upgrade", env=env)
    assert upgraded.returncode == 0, upgraded.stderr
