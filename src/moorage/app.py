"""The composition root: ``build(settings)`` wires engine, model, storage and the ASGI app.

Nothing here runs at import time; the CLI, server workers (via ``asgi_from_env``) and tests all
start from ``build``.
"""

from __future__ import annotations

import gc
import os
import secrets
import sys
from dataclasses import dataclass, replace
from datetime import timedelta
from functools import partial
from pathlib import Path

from sqlalchemy import Engine
from starlette.types import ASGIApp

from moorage.config import CONFIG_FILE_ENV, Settings, load_settings
from moorage.db.engine import Database, create_database_engine, sqlite_file
from moorage.domain.errors import ConfigError
from moorage.http.app import create_http_app
from moorage.http.context import HttpContext, ThreadPool
from moorage.http.health import HealthCheck
from moorage.model.sql import SqlRegistryModel
from moorage.observability import Metrics, configure_logging, get_logger
from moorage.services.account_standing import AccountStanding
from moorage.services.accounts import AccountService
from moorage.services.logins import AuthServices, LoginService, LoginThrottle
from moorage.services.manifests import ManifestSettings
from moorage.services.permissions import PermissionService
from moorage.services.recent_pulls import RecentPulls
from moorage.services.registry import AdminServices, RegistryServices, build_services
from moorage.services.repositories import RepositoryResolver
from moorage.services.repository_admin import RepositoryAdmin
from moorage.services.squash.service import SquashService
from moorage.services.storage_usage import StorageUsage
from moorage.services.tag_admin import TagAdmin
from moorage.services.torrents import TorrentService, TorrentSettings
from moorage.services.uploads import UploadSettings
from moorage.services.verify import StorageVerifier
from moorage.services.webseed import WebSeedSigner
from moorage.storage import StorageDriver, StorageLocations, create_driver
from moorage.storage.health import check_local_root, prepare_local_root
from moorage.workers.gc import GcJob
from moorage.workers.replication import ReplicationJob
from moorage.workers.upload_cleanup import UploadCleanupJob
from moorage.workers.verify import CHECKPOINT_FILE, VerifyJob

log = get_logger(__name__)
HEALTH_PROBE_KEY = "healthz/probe"


@dataclass(frozen=True, slots=True)
class Application:
    """The wired application. ``close()`` releases the database connections."""

    settings: Settings
    database: Database
    model: SqlRegistryModel
    locations: StorageLocations
    registry: RegistryServices
    admin: AdminServices  # the REST API's and the admin CLI's
    metrics: Metrics
    asgi: ASGIApp
    verify: VerifyJob  # `moorage storage verify`
    gc: GcJob  # `moorage gc`, `moorage worker gc`, the loop in `moorage serve`
    replication: ReplicationJob  # `moorage worker replicate`
    upload_cleanup: UploadCleanupJob  # `moorage worker clean-uploads`
    storage_usage: StorageUsage  # `moorage storage usage`, GET /healthz/storage
    accounts: AccountService  # the Authenticator; creates and changes accounts
    permissions: PermissionService  # the Authorizer
    auth: AuthServices  # the token service, login checks (throttled) and the realm

    def close(self) -> None:
        self.gc.stop()
        self.model.close_digest_locks()
        self.database.close()


@dataclass(frozen=True, slots=True)
class Accounts:
    """The accounts, and tags and labels, for the CLI's admin commands (no storage, no
    HTTP app)."""

    database: Database
    accounts: AccountService
    permissions: PermissionService
    resolver: RepositoryResolver
    tags: TagAdmin

    def close(self) -> None:
        self.database.close()


def _initial_superuser_password(settings: Settings) -> str:
    if settings.initial_superuser_password is not None:
        return settings.initial_superuser_password.get_secret_value()
    if settings.initial_superuser_password_file is not None:
        try:
            text = settings.initial_superuser_password_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"initial_superuser_password_file: cannot read it ({exc})") from None
        lines = text.splitlines()
        if lines and lines[0]:
            return lines[0]
        raise ConfigError("initial_superuser_password_file: the first line is empty")
    raise ConfigError(
        "initial_superuser: set initial_superuser_password "
        "(MOORAGE_INITIAL_SUPERUSER_PASSWORD) or initial_superuser_password_file"
    )


def bootstrap_superuser(settings: Settings, accounts: AccountService) -> bool:
    """Create ``initial_superuser`` on first start (idempotent: an existing user, its
    password included, is left alone); True when it was created now."""
    name = settings.initial_superuser
    if name is None or accounts.model.lookup_user(name) is not None:
        return False
    created = accounts.ensure_initial_superuser(name, _initial_superuser_password(settings))
    if created:
        log.info("initial superuser created", user=name)
    return created


FIRST_ADMIN = "admin"
FIRST_ADMIN_PASSWORD_FILE = "initial-admin-password"  # noqa: S105 (a file name)


def bootstrap_first_admin(settings: Settings, accounts: AccountService) -> Path | None:
    """On the very first start with auth on and no account at all (and no
    ``initial_superuser`` configured): a superuser ``admin`` with a random password, written
    to ``<data_dir>/initial-admin-password`` (mode 0600), never to a log. The file's path,
    or None when nothing was done."""
    if not settings.auth.enabled or settings.initial_superuser is not None:
        return None
    if accounts.list_users():
        return None
    password = secrets.token_urlsafe(18)
    if not accounts.ensure_initial_superuser(FIRST_ADMIN, password):
        return None  # another process made it first
    path = settings.data_dir / FIRST_ADMIN_PASSWORD_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(password + "\n")
    log.info("first superuser created", user=FIRST_ADMIN, password_file=str(path))
    return path


def _account_services(
    settings: Settings, model: SqlRegistryModel
) -> tuple[AccountService, PermissionService]:
    from moorage.model.sql.token_store import SqlTokenStore

    accounts = AccountService(
        model,
        library_support=settings.library_support,
        sessions=SqlTokenStore(model.database),  # a changed credential ends its logins
    )
    permissions = PermissionService(model, library_support=settings.library_support)
    bootstrap_superuser(settings, accounts)
    return accounts, permissions


def open_accounts(settings: Settings) -> Accounts:
    """The account services over the configured database (migrated first where ``build``
    would), without storage or the HTTP app."""
    configure_logging(settings.log_level, settings.log_format)
    engine = open_engine(settings)
    database = Database(engine)
    if settings.should_migrate_on_start:
        from moorage.db.migrate import upgrade_engine

        upgrade_engine(engine)
    model = SqlRegistryModel(
        database,
        default_removed_tag_expiration_s=settings.namespace_default_removed_tag_expiration_s,
    )
    accounts, permissions = _account_services(settings, model)
    resolver = RepositoryResolver(model, library_support=settings.library_support)
    return Accounts(database, accounts, permissions, resolver, TagAdmin(model))


def build_auth(
    settings: Settings, database: Database, accounts: AccountService, permissions: PermissionService
) -> AuthServices:
    """The token service over the configured keys (or the key generated once into the
    database, shared by every worker) and the throttled login checks."""
    from moorage.model.sql.token_store import SqlTokenStore
    from moorage.services.tokens import KeyRing, TokenService, TokenSettings, database_key_ring

    config = settings.auth
    store = SqlTokenStore(database)
    # Configured files are read now (a bad one stops the start); the generated key is read
    # from the database when first needed, so building never waits on the database.
    keys = (
        KeyRing.from_files(config.keys)
        if config.keys
        else partial(database_key_ring, store, config.algorithm)
    )
    tokens = TokenService(
        permissions,
        keys,
        TokenSettings(
            service=config.service,
            issuer=config.issuer,
            lifetime_s=config.token_lifetime_s,
            cache_size=config.verified_token_cache,
        ),
        store=store,
        directory=accounts,  # refresh tokens of disabled or deleted accounts stop working
    )
    throttle = LoginThrottle(
        config.login_limit_per_account, config.login_limit_per_client, config.throttle_storage
    )
    logins = LoginService(accounts, tokens, throttle, success_ttl_s=config.login_cache_s)
    standing = AccountStanding(accounts, config.account_check_s)
    return AuthServices(
        tokens, logins, realm=config.realm, enabled=config.enabled, standing=standing
    )


def build_torrents(
    settings: Settings,
    model: SqlRegistryModel,
    registry: RegistryServices,
    accounts: AccountService,
) -> TorrentService:
    """Torrents of blobs, their web seed URLs signed with a key made once into the database."""
    from moorage.model.sql.token_store import SqlTokenStore

    config = settings.torrents
    signer = WebSeedSigner(SqlTokenStore(model.database), config.url_lifetime_s, directory=accounts)
    return TorrentService(
        model,
        registry.blobs,
        signer,
        TorrentSettings(
            piece_length=config.piece_length, announce=config.announce, base_url=config.base_url
        ),
    )


def build_squash(
    settings: Settings, model: SqlRegistryModel, registry: RegistryServices
) -> SquashService:
    """Squashed images: built once per image under a lock every worker process sees,
    signed with the configured GPG key (checked now: a missing key stops the start)."""
    from moorage.model.sql.build_locks import BuildLocks
    from moorage.services.squash.service import SquashSettings
    from moorage.services.squash.signing import GpgSigner

    config = settings.derived_images
    signer = None
    if config.signing_key_id is not None:
        passphrase = config.signing_key_passphrase
        signer = GpgSigner(
            config.gnupg_home or settings.data_dir / "gnupg",
            config.signing_key_id,
            None if passphrase is None else passphrase.get_secret_value(),
        )
        signer.check()
    return SquashService(
        model,
        registry.blobs,
        BuildLocks(model.database, settings.data_dir / "locks" / "derived"),
        SquashSettings(
            config_size_limit=settings.manifest_config_size_limit,
            read_only=settings.read_only,
            scratch_dir=config.scratch_dir,
        ),
        signer,
    )


def build_gc(settings: Settings, model: SqlRegistryModel, locations: StorageLocations) -> GcJob:
    """The garbage collector with the configured grace windows (docs/gc.md)."""
    from moorage.model.interface.maintenance import GcWindows
    from moorage.services.gc import GarbageCollector, GcSettings

    config = settings.gc
    windows = GcWindows(
        blob_grace_ms=config.blob_grace_s * 1000,
        manifest_grace_ms=config.manifest_grace_s * 1000,
        tag_grace_ms=config.tag_grace_s * 1000,
    )
    gc_settings = GcSettings(windows, config.batch_size, timedelta(seconds=config.upload_max_age_s))
    return GcJob(GarbageCollector(model, locations, gc_settings), config.interval_s)


def open_engine(settings: Settings) -> Engine:
    """An engine for the configured database; creates the SQLite file's directory if needed."""
    database_file = sqlite_file(settings.database_url)
    if database_file is not None:
        Path(database_file).expanduser().parent.mkdir(parents=True, exist_ok=True)
    return create_database_engine(settings.database_url)


def upgrade_database(settings: Settings) -> str | None:
    """Bring the schema to the newest revision; returns that revision."""
    from moorage.db.migrate import current_revision, upgrade_engine  # Alembic: ~40 MB, rarely

    engine = open_engine(settings)
    try:
        upgrade_engine(engine)
        return current_revision(engine)
    finally:
        engine.dispose()


def database_revision(settings: Settings) -> str | None:
    """The schema revision the database is at (``None`` for an empty database)."""
    from moorage.db.migrate import current_revision

    engine = open_engine(settings)
    try:
        return current_revision(engine)
    finally:
        engine.dispose()


def _prepare_root(name: str, root: Path) -> None:
    try:
        prepare_local_root(root)
    except OSError as exc:
        raise ConfigError(
            f"storage location {name}: cannot create {root}: {exc.strerror or exc}"
        ) from exc


def open_storage(settings: Settings) -> tuple[StorageLocations, tuple[HealthCheck, ...]]:
    """A driver per configured location (preference order) and a health check for each."""
    default, configured = settings.storage.resolved(settings.data_dir)
    drivers: dict[str, StorageDriver] = {}
    checks: list[HealthCheck] = []
    for name, location in configured.items():
        options = location.driver_options(settings.storage_root)
        try:
            driver = create_driver(location.driver, **options)
        except ValueError as exc:
            raise ConfigError(f"storage location {name}: {exc}") from exc
        drivers[name] = driver
        label = "storage" if len(configured) == 1 else f"storage:{name}"
        if location.driver == "filesystem":
            root = options["root"]
            _prepare_root(name, root)
            checks.append(HealthCheck(label, partial(check_local_root, root)))
        else:
            checks.append(HealthCheck(label, partial(_probe, driver)))
    return StorageLocations(drivers, default), tuple(checks)


def _probe(driver: StorageDriver) -> None:
    driver.exists(HEALTH_PROBE_KEY)  # a round trip that raises when the store is unreachable


def build(settings: Settings) -> Application:
    """Wire everything for ``settings``; migrates first on the embedded (SQLite) default."""
    configure_logging(settings.log_level, settings.log_format)
    locations, storage_checks = open_storage(settings)
    engine = open_engine(settings)
    database = Database(engine)
    if settings.should_migrate_on_start:
        from moorage.db.migrate import upgrade_engine  # Alembic is big: loaded only to migrate

        upgrade_engine(engine)
    metrics = Metrics.create()
    model = SqlRegistryModel(
        database,
        locations=locations.names,
        default_removed_tag_expiration_s=settings.namespace_default_removed_tag_expiration_s,
    )
    accounts, permissions = _account_services(settings, model)
    auth = build_auth(settings, database, accounts, permissions)
    registry = build_services(
        model,
        locations,
        uploads=UploadSettings(
            blob_link_expiration_s=settings.push_temp_tag_expiration_s,
            max_blob_size=settings.max_blob_size,
            max_sessions_per_repository=settings.max_upload_sessions_per_repository,
            max_sessions_per_client=settings.max_upload_sessions_per_client,
            piece_length=settings.torrents.piece_length,
            hash_pieces=settings.torrents.enabled,
        ),
        manifests=ManifestSettings(
            size_limit=settings.manifest_size_limit,
            label_limit=settings.manifest_label_limit,
            config_size_limit=settings.manifest_config_size_limit,
            signature_limit=settings.schema1_signature_limit,
        ),
        page_cap=settings.listing_page_cap,
        library_support=settings.library_support,
    )
    if settings.torrents.enabled:
        registry = replace(registry, torrents=build_torrents(settings, model, registry, accounts))
    admin = AdminServices(
        resolver=registry.repositories,
        repositories=RepositoryAdmin(model, registry.repositories, permissions),
        tags=TagAdmin(model),
        accounts=accounts,
    )
    gc_job = build_gc(settings, model, locations)
    storage_usage = StorageUsage(model, locations, gc_job)
    context = HttpContext(
        metrics=metrics,
        health_checks=(HealthCheck("database", database.ping), *storage_checks),
        read_only=settings.read_only,
        on_shutdown=(database.close,),
        registry=registry,
        admin=admin,
        inline_reads=settings.is_embedded_database,
        body_idle_timeout_s=settings.upload_body_idle_timeout_s,
        upload_threads=ThreadPool(settings.upload_threads),
        auth=auth,
        authorizer=permissions,
        recent_pulls=RecentPulls(settings.auth.pull_permission_cache_s),
        squash=build_squash(settings, model, registry) if settings.derived_images.enabled else None,
        squash_threads=ThreadPool(settings.derived_images.build_threads),
        squash_wait_s=settings.derived_images.build_wait_s,
        storage_usage=storage_usage,
    )
    verify = VerifyJob(StorageVerifier(model, locations), settings.data_dir / CHECKPOINT_FILE)
    log.info("application built", settings=settings.redacted())
    return Application(
        settings=settings,
        database=database,
        model=model,
        locations=locations,
        registry=registry,
        admin=admin,
        metrics=metrics,
        asgi=create_http_app(context),
        verify=verify,
        gc=gc_job,
        replication=ReplicationJob(model, locations),
        upload_cleanup=UploadCleanupJob(model, locations),
        storage_usage=storage_usage,
        accounts=accounts,
        permissions=permissions,
        auth=auth,
    )


def asgi_from_env() -> ASGIApp:
    """App factory for the server's worker processes: settings come from the environment.

    ``moorage serve`` exports its command-line flags as ``MOORAGE_*`` variables (and the config
    file path as ``MOORAGE_CONFIG``) before starting the workers.
    """
    config_file = os.environ.get(CONFIG_FILE_ENV)
    settings = load_settings(Path(config_file) if config_file else None)
    tune_interpreter()
    application = build(settings)
    if settings.gc.enabled and not settings.read_only:  # read-only: nothing changes, not even GC
        application.gc.start_background()
    asgi = application.asgi
    settle_heap()
    return asgi


def tune_interpreter() -> None:
    """For a server process: hand the GIL over sooner than every 5 ms, so the event loop is
    not kept waiting behind a worker thread hashing or writing a blob."""
    sys.setswitchinterval(0.0005)


def settle_heap() -> None:
    """Once the application is built: move every object alive now (modules, tables,
    prebuilt statements) out of the garbage collector's sight. A full collection then walks
    only what requests allocate, instead of stalling a request for milliseconds now and then
    (the p99 of small requests)."""
    gc.collect()
    gc.freeze()
