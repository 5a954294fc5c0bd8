"""What a GC cycle with nothing to collect costs at scale (issue 14): a scratch database
with ``--blobs`` blob rows (each placed, linked by an unexpired upload link and held by a
manifest of a tagged image), dead tags inside the time-machine window, then the median of
``--cycles`` no-op GC cycles (and a dry run).

    .venv/bin/python -m bench.gc_noop [--blobs 1000000] [--cycles 5] [--database-url URL]

SQLite in a temporary directory by default; ``--database-url`` takes an empty PostgreSQL
database (``createdb`` one; it is filled, not dropped). Rows are inserted by set-based SQL
(generate_series / a recursive CTE), not through the model: 1M rows in seconds.
"""

# ruff: noqa: S608 (the SQL is built from integers and constants of this file only)

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import text

from moorage.db.engine import Database, create_database_engine
from moorage.db.migrate import upgrade
from moorage.model.interface.maintenance import GcWindows
from moorage.model.sql import SqlRegistryModel
from moorage.services.gc import GarbageCollector, GcSettings
from moorage.storage import StorageLocations, create_driver

DAY_MS = 86_400_000


def _series(dialect: str, count: int) -> str:
    """A relation ``s(i)`` of 1..count."""
    if dialect == "postgresql":
        return f"(SELECT generate_series(1, {count}) AS i) AS s"
    return (
        f"(WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < {count}) "
        "SELECT i FROM g) AS s"
    )


def fill(database: Database, blobs: int, now_ms: int) -> None:
    dialect = database.engine.dialect.name
    pad = "lpad(i::text, 64, '0')" if dialect == "postgresql" else "printf('%064d', i)"
    uid = "lpad(i::text, 36, '0')" if dialect == "postgresql" else "printf('%036d', i)"
    true, false = ("true", "false") if dialect == "postgresql" else ("1", "0")
    now = "now()" if dialect == "postgresql" else "CURRENT_TIMESTAMP"
    body = "decode('7b7d', 'hex')" if dialect == "postgresql" else "X'7b7d'"  # b"{}"
    manifests = max(1, blobs // 10)  # ten layers an image
    statements = [
        "INSERT INTO namespace (uuid, name, kind, enabled, removed_tag_expiration_s, created) "
        f"VALUES ('00000000-0000-0000-0000-000000000001', 'bench', 'user', {true}, 1209600, {now})",
        "INSERT INTO repository (namespace_id, name, visibility, kind, state, trust_enabled, "
        f"created) VALUES (1, 'app', 'private', 'image', 0, {false}, {now})",
        "INSERT INTO storage_location (name) VALUES ('local')",
        "INSERT INTO blob (uuid, digest, compressed_size, uncompressed_size, uploading, "
        f"content_addressed, created) SELECT {uid}, 'sha256:' || {pad}, 1000, 2000, {false}, "
        f"{true}, {now} FROM {_series(dialect, blobs)}",
        f"INSERT INTO blob_placement (blob_id, storage_location_id) SELECT i, 1 FROM "
        f"{_series(dialect, blobs)}",
        "INSERT INTO uploaded_blob (repository_id, blob_id, uploaded_at, expires_at_ms) "
        f"SELECT 1, i, {now}, {now_ms + DAY_MS} FROM {_series(dialect, blobs)}",
        "INSERT INTO manifest (repository_id, digest, media_type, manifest_bytes, created) "
        f"SELECT 1, 'sha256:' || {pad}, 'application/vnd.oci.image.manifest.v1+json', "
        f"{body}, "
        f"{now} FROM {_series(dialect, manifests)}",
        "INSERT INTO manifest_blob (repository_id, manifest_id, blob_id) "
        f"SELECT 1, (i - 1) / 10 + 1, i FROM {_series(dialect, blobs)}",
        # Every image tagged, and as many dead versions still inside the two-week window.
        "INSERT INTO tag (repository_id, name, manifest_id, lifetime_start_ms, "
        f"lifetime_end_ms, hidden, reversion) SELECT 1, 't' || i, i, {now_ms - DAY_MS}, NULL, "
        f"{false}, {false} FROM {_series(dialect, manifests)}",
        "INSERT INTO tag (repository_id, name, manifest_id, lifetime_start_ms, "
        f"lifetime_end_ms, hidden, reversion) SELECT 1, 't' || i, i, {now_ms - 3 * DAY_MS}, "
        f"{now_ms - DAY_MS}, {false}, {false} FROM {_series(dialect, manifests)}",
    ]
    with database.write() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)
    if dialect == "postgresql":
        with database.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
    else:
        with database.write() as conn:
            conn.exec_driver_sql("ANALYZE")


def run(url: str | None, blobs: int, cycles: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="moorage-gc-noop-") as scratch:
        url = url or f"sqlite:///{scratch}/gc.db"
        upgrade(url)
        engine = create_database_engine(url)
        database = Database(engine)
        model = SqlRegistryModel(database, locations=("local",))
        started = time.monotonic()
        fill(database, blobs, model.now_ms())
        filled_s = time.monotonic() - started
        with database.read() as conn:
            count = conn.execute(text("SELECT count(*) FROM blob")).scalar_one()
        locations = StorageLocations(
            {"local": create_driver("filesystem", root=Path(scratch) / "storage")}, "local"
        )
        windows = GcWindows(blob_grace_ms=600_000, manifest_grace_ms=600_000, tag_grace_ms=60_000)
        collector = GarbageCollector(model, locations, GcSettings(windows, 500, timedelta(days=2)))
        samples = []
        for _ in range(cycles):
            began = time.perf_counter()
            report = collector.run_once()
            samples.append(time.perf_counter() - began)
            assert (report.blobs, report.manifests, report.tags) == (0, 0, 0), report
        began = time.perf_counter()
        collector.preview()
        dry_s = time.perf_counter() - began
        model.close_digest_locks()
        engine.dispose()
    return {
        "database": url.split(":", 1)[0],
        "blob_rows": int(count),
        "fill_s": round(filled_s, 1),
        "noop_cycle_ms_median": round(statistics.median(samples) * 1000, 2),
        "noop_cycle_ms_max": round(max(samples) * 1000, 2),
        "dry_run_ms": round(dry_s * 1000, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blobs", type=int, default=1_000_000)
    parser.add_argument("--cycles", type=int, default=5)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    print(run(args.database_url, args.blobs, args.cycles))


if __name__ == "__main__":
    main()
