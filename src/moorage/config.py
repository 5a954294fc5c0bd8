"""Typed settings from an optional YAML file and ``MOORAGE_*`` environment variables.

Precedence, highest first: command-line flags, environment (``MOORAGE_PORT``, nested
``MOORAGE_STORAGE__ROOT``), the YAML file, defaults. Everything is validated once at start and
every problem is reported in one ``ConfigError`` that names each offending key.
"""

from __future__ import annotations

import ipaddress
import os
import re
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from moorage.domain.errors import ConfigError
from moorage.observability import LogFormat, redact_url_passwords, redact_value

ENV_PREFIX = "MOORAGE_"
CONFIG_FILE_ENV = "MOORAGE_CONFIG"  # path of the YAML file, for processes started without flags
MIB = 1024 * 1024

# Command-line flags for the Settings being built; a source that must outrank the environment.
_flag_values: ContextVar[dict[str, Any]] = ContextVar("moorage_flag_values")


LOCATION_NAME = r"^[a-z0-9][a-z0-9_-]*$"
# What botocore accepts (so a bad value fails here, in one line, not deep inside boto3).
S3_BUCKET_NAME = re.compile(r"[a-zA-Z0-9.\-_]{1,255}")
S3_REGION_NAME = re.compile(r"[a-zA-Z0-9](?:[a-zA-Z0-9\-]{0,61}[a-zA-Z0-9])?")
S3_ONLY_KEYS = (
    "bucket",
    "prefix",
    "endpoint_url",
    "region",
    "access_key",
    "secret_key",
    "presign_redirects",
    "addressing_style",
)
DATABASE_DRIVERS = ("sqlite", "sqlite+pysqlite", "postgresql", "postgres", "postgresql+psycopg")


class NestedKeyError(ValueError):
    """A validation problem with a key below the model that found it (named in the error)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, which containers' cpusets narrow)."""
    return max(1, len(os.sched_getaffinity(0)))


def _check_endpoint_url(url: str) -> None:
    from urllib.parse import urlsplit

    problem = "must be an http:// or https:// URL with a host, such as http://127.0.0.1:8333"
    try:
        parts = urlsplit(url)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        raise NestedKeyError("endpoint_url", problem) from None
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        raise NestedKeyError("endpoint_url", problem)


def _check_s3(location: LocationSettings) -> None:
    if not location.bucket:
        raise NestedKeyError("bucket", "required for an s3 location")
    if not S3_BUCKET_NAME.fullmatch(location.bucket):
        raise NestedKeyError("bucket", "must be 1-255 letters, digits, '.', '-' or '_'")
    if (location.access_key is None) != (location.secret_key is None):
        given, missing = (
            ("access_key", "secret_key")
            if location.secret_key is None
            else ("secret_key", "access_key")
        )
        raise NestedKeyError(
            missing,
            f"required when {given} is set (give both, or neither to use "
            "the AWS environment or instance credentials)",
        )
    for key in ("access_key", "secret_key"):
        if getattr(location, key) == "":
            raise NestedKeyError(key, "must not be empty")
    if location.endpoint_url is not None:
        _check_endpoint_url(location.endpoint_url)
    if location.region is not None and not S3_REGION_NAME.fullmatch(location.region):
        raise NestedKeyError("region", "must be a region name such as us-east-1")
    if location.prefix:
        from moorage.storage.keys import validate_prefix  # only S3 configurations pay for it

        try:
            validate_prefix(location.prefix.strip("/"))
        except ValueError as exc:
            raise NestedKeyError("prefix", f"not a valid key prefix ({exc})") from None


def _check_database_url(url: str) -> None:
    """Parse as SQLAlchemy will; messages never repeat the URL (it may hold a password)."""
    from sqlalchemy.engine import make_url  # only when a URL is configured
    from sqlalchemy.exc import ArgumentError

    usage = "must be sqlite:///<path> or postgresql://user:password@host:port/database"
    try:
        parsed = make_url(url)
        port = parsed.port
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise ValueError(usage) from None
    if parsed.drivername not in DATABASE_DRIVERS:
        raise ValueError(f"{usage} (not {parsed.drivername[:40]!r})")
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"port {port} is not within 1-65535")
    if parsed.drivername.startswith("postgres") and not parsed.database:
        raise ValueError(f"{usage}: the database name is missing")


def _check_directories(settings: Settings, *, database_given: bool) -> None:
    """A path setting that names an existing file (not a directory) fails here, naming the key,
    rather than later as an OS error about some path below it."""
    paths: list[tuple[str, Path]] = [("data_dir", settings.data_dir)]
    if not settings.storage.locations:
        paths.append(("storage.root", settings.storage_root))
    for name, location in settings.storage.locations.items():
        if location.root is not None:
            paths.append((f"storage.locations.{name}.root", location.root.expanduser()))
    if database_given and settings.is_embedded_database:  # the default is in data_dir
        from sqlalchemy.engine import make_url

        database = make_url(settings.database_url).database
        if database not in (None, "", ":memory:"):
            paths.append(("database_url", Path(database).expanduser().parent))
    for key, path in paths:
        existing = next((p for p in (path, *path.parents) if p.exists()), None)
        if existing is not None and not existing.is_dir():
            raise NestedKeyError(key, f"{existing} is not a directory")


class LocationSettings(BaseModel):
    """One named storage location: a filesystem directory or an S3-compatible bucket."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    driver: Literal["filesystem", "s3", "memory"] = "filesystem"
    root: Path | None = Field(default=None, description="filesystem: the directory")
    bucket: str | None = Field(default=None, description="s3: the bucket")
    prefix: str = Field(default="", description="s3: key prefix inside the bucket")
    endpoint_url: str | None = Field(
        default=None, description="s3: endpoint of a compatible server"
    )
    region: str | None = Field(default=None, description="s3: region of the bucket")
    access_key: str | None = Field(default=None, description="s3: access key id")
    secret_key: str | None = Field(default=None, description="s3: secret access key")
    presign_redirects: bool = Field(
        default=False, description="s3: answer blob GETs with 307 to a presigned URL"
    )
    addressing_style: Literal["auto", "path", "virtual"] | None = Field(
        default=None, description="s3: bucket in the path or in the host name"
    )

    @model_validator(mode="after")
    def _complete(self) -> LocationSettings:
        if self.driver == "s3":
            _check_s3(self)
            if "root" in self.model_fields_set:
                raise NestedKeyError("root", "only for filesystem locations (this one is s3)")
            return self
        for key in S3_ONLY_KEYS:
            if key in self.model_fields_set:
                raise NestedKeyError(key, f"only for s3 locations (this one is {self.driver})")
        if self.driver == "memory" and "root" in self.model_fields_set:
            raise NestedKeyError("root", "only for filesystem locations (this one is memory)")
        return self

    def driver_options(self, fallback_root: Path) -> dict[str, Any]:
        if self.driver == "filesystem":
            return {"root": (self.root or fallback_root).expanduser().resolve()}
        if self.driver == "memory":
            return {}
        options = {
            "bucket": self.bucket,
            "prefix": self.prefix,
            "endpoint_url": self.endpoint_url,
            "region": self.region,
            "access_key": self.access_key,
            "secret_key": self.secret_key,
            "presign_redirects": self.presign_redirects,
            "addressing_style": self.addressing_style,
        }
        return {key: value for key, value in options.items() if value is not None}


class StorageSettings(BaseModel):
    """Where blob bytes live: one filesystem location by default, or several named ones."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    driver: Literal["filesystem"] = "filesystem"
    root: Path | None = Field(default=None, description="default: <data_dir>/storage")
    location: str = Field(default="local", min_length=1, pattern=LOCATION_NAME)
    locations: dict[str, LocationSettings] = Field(
        default_factory=dict,
        description="named locations; when set, `driver`/`root`/`location` are not used",
    )
    default_location: str | None = Field(default=None, description="where pushes go")
    preference: list[str] = Field(
        default_factory=list, description="read order; default: the default location first"
    )

    @model_validator(mode="after")
    def _consistent(self) -> StorageSettings:
        for name in self.locations:
            if not re.match(LOCATION_NAME, name):
                raise NestedKeyError(
                    f"locations.{name}",
                    "not a valid location name (lower-case letters, digits, '-' and '_', "
                    "starting with a letter or digit)",
                )
        names = list(self.locations) or [self.location]
        known = f"known: {', '.join(names)}"
        if self.default_location is not None and self.default_location not in names:
            raise NestedKeyError(
                "default_location", f"{self.default_location!r} is not a location ({known})"
            )
        unknown = [name for name in self.preference if name not in names]
        if unknown:
            raise NestedKeyError(
                "preference", f"names unknown locations: {', '.join(unknown)} ({known})"
            )
        return self

    def resolved(self, data_dir: Path) -> tuple[str, dict[str, LocationSettings]]:
        """(default location, every location in read-preference order)."""
        locations = dict(self.locations) or {
            self.location: LocationSettings(driver="filesystem", root=self.root)
        }
        default = self.default_location or (
            self.location if not self.locations else next(iter(locations))
        )
        order = [*self.preference, default, *locations]
        ordered = {name: locations[name] for name in dict.fromkeys(order)}
        return default, ordered


class DerivedImageSettings(BaseModel):
    """Squashed images (``/c1/squash/...``) and their GPG signatures (docs/derived-images.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(
        default=False,
        description="serve images as one flattened layer in a docker load tarball",
    )
    build_threads: int = Field(
        default=2, ge=1, le=64, description="squashed images one worker process builds at once"
    )
    build_wait_s: float = Field(
        default=60.0,
        ge=0,
        le=3600,
        description="how long a request waits for a build of the same image (then 202)",
    )
    scratch_dir: Path | None = Field(
        default=None,
        description="where the flattened layer is spooled while building; "
        "default: the system's temporary directory",
    )
    signing_key_id: str | None = Field(
        default=None,
        min_length=8,
        max_length=128,
        description="id or fingerprint of the GPG key that signs them; unset: no signatures",
    )
    gnupg_home: Path | None = Field(
        default=None, description="GnuPG home directory holding that key; default: <data_dir>/gnupg"
    )
    signing_key_passphrase: SecretStr | None = Field(
        default=None,
        description="the key's passphrase (MOORAGE_DERIVED_IMAGES__SIGNING_KEY_PASSPHRASE)",
    )


class AuthSettings(BaseModel):
    """Docker token auth (docs/auth.md): the token service, its keys and login throttling."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(
        default=True, description="require credentials or a token on the registry API"
    )
    service: str = Field(
        default="moorage",
        min_length=1,
        max_length=255,
        description="the registry's identity: token audience and challenge `service`",
    )
    issuer: str = Field(
        default="moorage-token-service",
        min_length=1,
        max_length=255,
        description="the `iss` of the tokens this registry issues and accepts",
    )
    realm: str | None = Field(
        default=None,
        description="absolute URL of the token endpoint for challenges, e.g. "
        "https://reg.example.com/v2/auth; default: derived (loopback only)",
    )
    token_lifetime_s: int = Field(
        default=300, ge=60, le=86_400, description="how long an issued token is valid"
    )
    keys: list[Path] = Field(
        default_factory=list,
        description="PEM key files: the first (private) signs, all verify; "
        "default: a key generated once into the database",
    )
    algorithm: Literal["ES256", "RS256"] = Field(
        default="ES256", description="type of the generated key (configured keys: their own)"
    )
    verified_token_cache: int = Field(
        default=10_000, ge=0, le=1_000_000, description="verified tokens remembered per process"
    )
    login_limit_per_account: str = Field(
        default="10/minute", description="failed logins one account may have (then 429)"
    )
    login_limit_per_client: str = Field(
        default="30/minute", description="failed logins one client address may have"
    )
    throttle_storage: str = Field(
        default="memory://",
        description="where failed logins are counted (a `limits` storage URI; "
        "memory:// counts per process)",
    )
    login_cache_s: float = Field(
        default=30.0, ge=0, le=3600, description="how long a successful password check is reused"
    )
    pull_permission_cache_s: float = Field(
        default=5.0,
        ge=0,
        le=300,
        description="how long a worker reuses a permitted pull for a caller without a bearer "
        "token (a revoked read permission takes effect within this bound)",
    )
    account_check_s: float = Field(
        default=5.0,
        ge=0,
        le=300,
        description="how long a worker trusts that the account a bearer token or a remembered "
        "login names is still enabled (a disabled user stops being served within this bound)",
    )

    @field_validator("realm")
    @classmethod
    def _absolute_url(cls, value: str | None) -> str | None:
        from urllib.parse import urlsplit

        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("must be an absolute http:// or https:// URL")
        return value

    @field_validator("login_limit_per_account", "login_limit_per_client")
    @classmethod
    def _rate(cls, value: str) -> str:
        import limits

        try:
            limits.parse(value)
        except ValueError:
            raise ValueError(f"must be a rate such as 10/minute, not {value[:40]!r}") from None
        return value


class TorrentSettings(BaseModel):
    """BitTorrent files for blobs with a signed web seed (docs/torrents.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(
        default=False,
        description="serve .torrent files for blobs and SHA-1 their pieces while they are pushed",
    )
    piece_length: int = Field(
        default=512 * 1024,
        ge=16 * 1024,
        le=16 * MIB,
        description="bytes per torrent piece (a power of two)",
    )
    url_lifetime_s: int = Field(
        default=3600, ge=60, le=7 * 86_400, description="how long a web seed URL is valid"
    )
    announce: str | None = Field(
        default=None, description="tracker URL put in torrents; default: none (web seed only)"
    )
    base_url: str | None = Field(
        default=None,
        description="absolute URL clients reach the registry at, for web seed URLs; "
        "default: the torrent request's own",
    )

    @field_validator("piece_length")
    @classmethod
    def _power_of_two(cls, value: int) -> int:
        if value & (value - 1):
            raise ValueError(f"must be a power of two, not {value}")
        return value

    @field_validator("announce")
    @classmethod
    def _tracker_url(cls, value: str | None) -> str | None:
        return _absolute_url(value, ("http", "https", "udp"))

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        return _absolute_url(value, ("http", "https"))


class GcConfig(BaseModel):
    """Online garbage collection (docs/gc.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(
        default=True, description="collect garbage periodically inside every `moorage serve` worker"
    )
    interval_s: float = Field(
        default=300.0, gt=0, le=86_400, description="seconds between two cycles of a running GC"
    )
    batch_size: int = Field(
        default=500, ge=1, le=100_000, description="rows one GC step reads or deletes at most"
    )
    blob_grace_s: int = Field(
        default=600,
        ge=0,
        description="a blob younger than this, or whose last link expired less long ago, stays",
    )
    manifest_grace_s: int = Field(
        default=600, ge=0, description="a manifest younger than this stays, even untagged"
    )
    tag_grace_s: int = Field(
        default=60, ge=0, description="a temporary (hidden) tag ended less long ago stays"
    )
    upload_max_age_s: int = Field(
        default=2 * 86_400,
        ge=0,
        description="upload sessions older than this are removed with their partial data",
    )


def _absolute_url(value: str | None, schemes: tuple[str, ...]) -> str | None:
    from urllib.parse import urlsplit

    if value is not None:
        parts = urlsplit(value)
        if parts.scheme not in schemes or not parts.hostname:
            raise ValueError(f"must be an absolute {' or '.join(schemes)} URL with a host")
    return value


class Settings(BaseSettings):
    """All of Moorage's settings. Build with :func:`load_settings`, not directly."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        case_sensitive=False,
    )

    host: str = "127.0.0.1"
    port: int = Field(default=5000, ge=1, le=65535)
    data_dir: Path = Path("./data")
    database_url: str = Field(default="", description="default: sqlite:///<data_dir>/moorage.db")
    auto_migrate: bool | None = Field(
        default=None, description="run migrations at start; default: only on SQLite"
    )
    workers: int | Literal["auto"] = Field(
        default="auto",
        description="HTTP worker processes; auto: one per usable CPU (1 with memory storage)",
    )

    @field_validator("workers", mode="before")
    @classmethod
    def _worker_count(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() == "auto":
            return "auto"
        try:
            count = int(str(value).strip()) if not isinstance(value, int) else value
        except ValueError:
            raise ValueError(f"a number from 1 to 256, or auto, not {value!r:.40}") from None
        if not 1 <= count <= 256:
            raise ValueError(f"a number from 1 to 256, or auto, not {count}")
        return count

    reuse_port: bool = Field(
        default=False,
        description="share the port with other servers that set it too (SO_REUSEPORT)",
    )
    shutdown_timeout_s: int = Field(
        default=5, ge=1, le=3600, description="after SIGTERM, kill workers still busy this long"
    )
    read_only: bool = False
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: LogFormat = "auto"
    storage: StorageSettings = StorageSettings()
    auth: AuthSettings = AuthSettings()
    torrents: TorrentSettings = TorrentSettings()
    push_temp_tag_expiration_s: int = Field(default=3600, ge=0)
    manifest_size_limit: int = Field(default=4 * MIB, ge=1024)
    manifest_label_limit: int = Field(
        default=256, ge=0, le=100_000, description="most labels one image config may carry"
    )
    manifest_config_size_limit: int = Field(
        default=1 * MIB, ge=1024, description="largest image config read for labels and V1"
    )
    schema1_signature_limit: int = Field(
        default=16, ge=1, le=1000, description="most signatures one schema 1 manifest may carry"
    )
    max_blob_size: int = Field(default=20 * 1024 * MIB, ge=1, description="largest blob accepted")
    listing_page_cap: int = Field(
        default=1000, ge=1, description="most tags or repositories one listing page returns"
    )
    max_upload_sessions_per_repository: int = Field(
        default=500, ge=1, description="open upload sessions one repository may hold (then 429)"
    )
    max_upload_sessions_per_client: int = Field(
        default=200, ge=1, description="open upload sessions one client address may hold"
    )
    upload_body_idle_timeout_s: float = Field(
        default=60.0, gt=0, le=3600, description="drop a request body that sends nothing this long"
    )
    upload_threads: int = Field(
        default=64, ge=1, le=4096, description="worker threads for streaming upload bodies"
    )
    namespace_default_removed_tag_expiration_s: int = Field(default=1_209_600, ge=0)
    library_support: bool = Field(
        default=True,
        description="one-component names (alpine) are repositories of the library namespace",
    )
    initial_superuser: str | None = Field(
        default=None,
        description="a superuser created at start unless a user of this name exists",
    )
    initial_superuser_password: SecretStr | None = Field(
        default=None,
        description="its password (MOORAGE_INITIAL_SUPERUSER_PASSWORD); read once, never shown",
    )
    initial_superuser_password_file: Path | None = Field(
        default=None, description="or a file holding its password (first line)"
    )
    derived_images: DerivedImageSettings = DerivedImageSettings()
    gc: GcConfig = GcConfig()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The YAML file arrives as init kwargs: flags beat the environment, which beats the file.
        flags = InitSettingsSource(settings_cls, init_kwargs=_flag_values.get({}))
        return flags, env_settings, init_settings

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _lowercase(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if value:
            _check_database_url(value)
        return value

    @field_validator("host")
    @classmethod
    def _ip_address(cls, value: str) -> str:
        # The server binds a numeric address: a host name would fail later, deep in the server.
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise ValueError(
                f"must be an IP address such as 127.0.0.1, 0.0.0.0 or ::, not {value[:100]!r}"
            ) from None
        return value

    @model_validator(mode="after")
    def _fill_defaults(self) -> Settings:
        # Resolved once so every worker process agrees on the same absolute paths.
        data_dir = self.data_dir.expanduser().resolve()
        object.__setattr__(self, "data_dir", data_dir)
        database_given = bool(self.database_url)
        if not database_given:
            object.__setattr__(self, "database_url", f"sqlite:///{data_dir / 'moorage.db'}")
        root = self.storage.root
        root = data_dir / "storage" if root is None else root.expanduser().resolve()
        object.__setattr__(self, "storage", self.storage.model_copy(update={"root": root}))
        _check_directories(self, database_given=database_given)
        if not self.auth.enabled and not ipaddress.ip_address(self.host).is_loopback:
            raise NestedKeyError(
                "auth.enabled",
                f"an open registry (no auth) listens on loopback only, not on {self.host}",
            )
        memory = [name for name, loc in self.storage.locations.items() if loc.driver == "memory"]
        if self.workers == "auto":
            object.__setattr__(self, "workers", 1 if memory else usable_cpus())
        if memory and self.worker_count > 1:
            raise NestedKeyError(
                f"storage.locations.{memory[0]}.driver",
                f"memory keeps blobs inside one process: not with workers: {self.workers}",
            )
        return self

    @property
    def worker_count(self) -> int:
        """``workers`` as resolved at validation (``auto`` is never left unresolved)."""
        return self.workers if isinstance(self.workers, int) else usable_cpus()

    @property
    def is_embedded_database(self) -> bool:
        return self.database_url.startswith("sqlite:")

    @property
    def storage_root(self) -> Path:
        root = self.storage.root
        assert root is not None  # filled in by _fill_defaults
        return root

    @property
    def should_migrate_on_start(self) -> bool:
        return self.is_embedded_database if self.auto_migrate is None else self.auto_migrate

    def redacted(self) -> dict[str, Any]:
        """A JSON-ready view with passwords removed, for logs and ``config show``."""
        data: dict[str, Any] = redact_value("", self.model_dump(mode="json"))
        return data

    def __repr_args__(self) -> Any:
        for key, value in super().__repr_args__():
            yield key, redact_url_passwords(value) if isinstance(value, str) else value


def _strict_loader() -> Any:
    """PyYAML's SafeLoader, except that a key given twice in one mapping is an error: the
    second ``storage:`` section would otherwise silently replace the first."""
    import yaml

    class StrictLoader(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            seen: set[object] = set()
            for key_node, _ in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                    continue  # `<<: *defaults` may be overridden by the keys next to it
                key = self.construct_object(key_node)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {str(key)[:100]!r} given twice", key_node.start_mark
                    )
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    return StrictLoader


def read_config_file(path: Path) -> dict[str, Any]:
    """Read a YAML mapping; an empty file means no settings."""
    import yaml  # ~1 MB that a server configured by flags and environment never needs

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"config file {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path}: not UTF-8 text (byte {exc.start})") from exc
    try:
        data = yaml.load(text, Loader=_strict_loader())  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as exc:
        # One line: YAML errors span several, the CLI prints a single line.
        raise ConfigError(
            f"config file {path}: not valid YAML: {' '.join(str(exc).split())}"
        ) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: must be a mapping of settings, not a list or value")
    return {str(key): value for key, value in data.items()}


def _describe(error: Any) -> str:
    key = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        return f"unknown key '{key}'"
    cause = error.get("ctx", {}).get("error")
    if isinstance(cause, NestedKeyError):
        return f"{'.'.join(filter(None, (key, cause.key)))}: {cause}"
    if isinstance(cause, ValueError):  # our own validators' messages, without pydantic's prefix
        return f"{key or 'settings'}: {cause}"
    return f"{key or 'settings'}: {error['msg']}"


def _describe_source_error(exc: SettingsError) -> str:
    """pydantic-settings fails on a variable whose value is not JSON where JSON is needed
    (a nested section or a list); name the variable."""
    found = re.search(r'field "([^"]+)"', str(exc))
    if found is None:
        return f"settings: {' '.join(str(exc).split())}"
    field = found.group(1)
    return (
        f"{field}: {ENV_PREFIX}{field.upper()} is not valid JSON "
        f"(or set the nested keys one by one, e.g. {ENV_PREFIX}{field.upper()}__<KEY>)"
    )


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build settings from defaults, the file, the environment and explicit overrides.

    ``overrides`` (command-line flags) win over everything; ``None`` values are ignored.
    """
    values = read_config_file(config_file) if config_file is not None else {}
    token = _flag_values.set({key: value for key, value in overrides.items() if value is not None})
    try:
        return Settings(**values)
    except ValidationError as exc:
        problems = "; ".join(_describe(error) for error in exc.errors())
        raise ConfigError(problems) from None
    except SettingsError as exc:
        raise ConfigError(_describe_source_error(exc)) from None
    finally:
        _flag_values.reset(token)
