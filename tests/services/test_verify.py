"""Scrub and repair: corrupt copies on real storage are found, quarantined, never served again,
and the next genuine upload of the digest repairs them (SQLite and PostgreSQL; disk and S3)."""

from __future__ import annotations

import hashlib
import json
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from moorage.db.engine import Database, create_database_engine
from moorage.db.migrate import upgrade
from moorage.domain.errors import BlobNotFoundError, ConfigError
from moorage.domain.records import RepositoryReference
from moorage.model.sql import SqlRegistryModel
from moorage.services.registry import RegistryServices, build_services
from moorage.services.replication import ReplicationService
from moorage.services.verify import CorruptBlob, StorageVerifier, VerifyPass, blob_keys
from moorage.storage import StorageLocations, create_driver, keys
from moorage.workers.verify import (
    CHECKPOINT_FILE,
    ByteRate,
    Checkpoint,
    VerifyJob,
    VerifyRequest,
)
from support.s3servers import S3Server, seaweedfs_s3, unique_prefix  # noqa: F401 (fixture)


@pytest.fixture(params=["sqlite", "postgres"])
def model(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlRegistryModel]:
    """The conftest's model, over both databases (verify is model-level)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/verify.db"
    else:
        url = request.getfixturevalue("fresh_postgres_url")
    upgrade(url)
    engine = create_database_engine(url)
    yield SqlRegistryModel(Database(engine), locations=("primary", "replica"))
    engine.dispose()


@pytest.fixture
def job(model: SqlRegistryModel, locations: StorageLocations, tmp_path: Path) -> VerifyJob:
    return VerifyJob(StorageVerifier(model, locations), tmp_path / "data" / CHECKPOINT_FILE)


def _push(services: RegistryServices, repo: RepositoryReference, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    services.uploads.upload_whole(repo, digest, [data], len(data))
    return digest


def _push_chunked(services: RegistryServices, repo: RepositoryReference, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    progress = services.uploads.start(repo)
    half = len(data) // 2
    services.uploads.append(repo, progress.upload_id, [data[:half]])
    services.uploads.finish(repo, progress.upload_id, digest, [data[half:]])
    return digest


def _file(tmp_path: Path, location: str, digest: str) -> Path:
    return tmp_path / location / keys.blob_key(digest)  # the conftest's layout


def _flip_a_byte(path: Path, at: int = 7) -> bytes:
    spoiled = bytearray(path.read_bytes())
    spoiled[at] ^= 0x01
    path.write_bytes(bytes(spoiled))
    return bytes(spoiled)


def _served(services: RegistryServices, repo: RepositoryReference, digest: str) -> bytes:
    return b"".join(services.blobs.content(repo, digest).chunks())


def _quarantined(tmp_path: Path, location: str) -> list[Path]:
    return sorted(p for p in (tmp_path / location / "_quarantine").rglob("*") if p.is_file())


def test_a_corrupt_copy_is_quarantined_and_reads_use_the_good_one(
    services: RegistryServices,
    repo: RepositoryReference,
    model: SqlRegistryModel,
    locations: StorageLocations,
    job: VerifyJob,
    tmp_path: Path,
) -> None:
    data = b"layer bytes " * 50_000
    digest = _push(services, repo, data)
    sound = _push(services, repo, b"an untouched config")
    ReplicationService(model, locations).run_once()
    spoiled = _flip_a_byte(_file(tmp_path, "primary", digest))
    assert _served(services, repo, digest) == spoiled  # what a pull got before the scrub

    report = job.run(VerifyRequest())

    primary, replica = report.locations
    assert (primary.location, primary.checked, primary.complete) == ("primary", 2, True)
    assert primary.bytes == len(data) + len(b"an untouched config")
    assert (replica.checked, replica.corrupt) == (2, ())
    (bad,) = primary.corrupt
    assert bad.digest == digest and bad.placement_removed
    assert bad.found_digest == "sha256:" + hashlib.sha256(spoiled).hexdigest()
    assert (bad.found_size, bad.recorded_size) == (len(data), len(data))
    assert bad.quarantine_key is not None
    assert bad.quarantine_key.startswith(f"_quarantine/sha256/{digest[7:]}/")
    assert report.corrupt == 1 and not report.stopped
    # The bad bytes left their content-addressed key; nothing lists them as a blob.
    assert not _file(tmp_path, "primary", digest).exists()
    assert [p.read_bytes() for p in _quarantined(tmp_path, "primary")] == [spoiled]
    assert [d for d, _ in blob_keys(locations.driver("primary"))] == [sound]
    blob = model.lookup_blob(digest)
    assert blob is not None and blob.placements == ("replica",)
    # Pulls get the genuine bytes from the other location.
    content = services.blobs.content(repo, digest)
    assert content.storage is locations.driver("replica")
    assert _served(services, repo, digest) == data
    assert not (tmp_path / "data" / CHECKPOINT_FILE).exists()  # a finished pass leaves none


@pytest.mark.parametrize("upload", [_push, _push_chunked], ids=["monolithic", "chunked"])
def test_with_no_good_copy_left_the_blob_is_unknown_until_a_genuine_upload_repairs_it(
    services: RegistryServices,
    repo: RepositoryReference,
    model: SqlRegistryModel,
    job: VerifyJob,
    tmp_path: Path,
    upload: Any,
) -> None:
    data = b"only one copy " * 10_000
    digest = _push(services, repo, data)
    _flip_a_byte(_file(tmp_path, "primary", digest))
    other = services.repositories.for_write("acme/other")

    assert job.run(VerifyRequest(locations=("primary",))).corrupt == 1

    with pytest.raises(BlobNotFoundError):
        services.blobs.content(repo, digest)  # GET: 404 BLOB_UNKNOWN, never the bad bytes
    with pytest.raises(BlobNotFoundError):
        services.blobs.stat(repo, digest)  # HEAD: 404, so a client uploads it again
    # A mount cannot stand for bytes stored nowhere: the client falls back to an upload.
    assert services.blobs.mount(other, digest, repo) is None

    assert upload(services, other, data) == digest

    blob = model.lookup_blob(digest)
    assert blob is not None and blob.placements == ("primary",)
    assert _file(tmp_path, "primary", digest).read_bytes() == data
    assert _served(services, repo, digest) == data
    assert _served(services, other, digest) == data
    assert services.blobs.stat(repo, digest).compressed_size == len(data)
    assert job.run(VerifyRequest()).corrupt == 0


def test_an_upload_before_the_scrub_does_not_repair_and_after_it_does(
    services: RegistryServices, repo: RepositoryReference, job: VerifyJob, tmp_path: Path
) -> None:
    """Why quarantine moves the object: an upload dedupes onto whatever is under the key."""
    data = b"deduplicated " * 1000
    digest = _push(services, repo, data)
    spoiled = _flip_a_byte(_file(tmp_path, "primary", digest))
    _push(services, repo, data)
    assert _served(services, repo, digest) == spoiled
    job.run(VerifyRequest())
    _push(services, repo, data)
    assert _served(services, repo, digest) == data


def test_a_stored_object_the_database_does_not_record_is_verified_too(
    services: RegistryServices,
    repo: RepositoryReference,
    locations: StorageLocations,
    model: SqlRegistryModel,
    job: VerifyJob,
    tmp_path: Path,
) -> None:
    """Left by a crash between storing and recording: the next upload would dedupe onto it."""
    data = b"never recorded " * 100
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    locations.driver("primary").put(keys.blob_key(digest), [b"something else entirely"])
    assert model.lookup_blob(digest) is None

    (bad,) = job.run(VerifyRequest()).locations[0].corrupt

    assert (bad.digest, bad.recorded_size, bad.placement_removed) == (digest, None, False)
    assert bad.quarantine_key is not None
    _push(services, repo, data)
    assert _served(services, repo, digest) == data


def test_dry_run_reports_and_changes_nothing(
    services: RegistryServices,
    repo: RepositoryReference,
    model: SqlRegistryModel,
    job: VerifyJob,
    tmp_path: Path,
) -> None:
    digest = _push(services, repo, b"a dry run " * 1000)
    spoiled = _flip_a_byte(_file(tmp_path, "primary", digest))

    report = job.run(VerifyRequest(dry_run=True))

    (bad,) = report.locations[0].corrupt
    assert report.dry_run and report.corrupt == 1
    assert (bad.digest, bad.quarantine_key, bad.placement_removed) == (digest, None, False)
    assert _file(tmp_path, "primary", digest).read_bytes() == spoiled
    assert _quarantined(tmp_path, "primary") == []
    blob = model.lookup_blob(digest)
    assert blob is not None and blob.placements == ("primary",)
    assert not (tmp_path / "data").exists()  # not even a checkpoint


class _StopAfter:
    """An observer that stops the pass after ``count`` blobs, as SIGINT would."""

    def __init__(self, count: int, stop: threading.Event) -> None:
        self.count, self.stop = count, stop
        self.verified: list[str] = []
        self.bytes = 0
        self.estimates: dict[str, tuple[int, int]] = {}

    def location_started(self, location: str, blobs: int, size: int) -> None:
        self.estimates[location] = (blobs, size)

    def advanced(self, location: str, size: int) -> None:
        self.bytes += size

    def blob_verified(self, location: str, digest: str, corrupt: CorruptBlob | None) -> None:
        self.verified.append(digest)
        if len(self.verified) == self.count:
            self.stop.set()


def test_resume_continues_after_the_last_blob_verified(
    services: RegistryServices, repo: RepositoryReference, job: VerifyJob, tmp_path: Path
) -> None:
    digests = sorted(_push(services, repo, f"blob {i}".encode() * 500) for i in range(7))
    stop = threading.Event()
    first = _StopAfter(3, stop)

    stopped = job.run(VerifyRequest(), first, stop)

    assert stopped.stopped and not stopped.locations[0].complete
    assert first.verified == digests[:3] and stopped.locations[0].checked == 3
    # The progress estimate comes from the database: every blob placed there.
    assert first.estimates["primary"] == (7, 7 * len(b"blob 0") * 500)
    saved = json.loads((tmp_path / "data" / CHECKPOINT_FILE).read_text())
    assert saved["locations"]["primary"] == {"after": digests[2], "done": False}

    second = _StopAfter(0, threading.Event())
    resumed = job.run(VerifyRequest(resume=True), second)

    assert second.verified == digests[3:]  # nothing verified twice, nothing skipped
    assert second.estimates == {"primary": (4, 4 * 3000), "replica": (0, 0)}
    primary, replica = resumed.locations
    assert (primary.resumed_after, primary.checked, primary.complete) == (digests[2], 4, True)
    assert replica.checked == 0  # nothing was replicated there
    assert not resumed.stopped
    assert not (tmp_path / "data" / CHECKPOINT_FILE).exists()
    # Without --resume (or once a pass has finished) everything is verified again.
    again = _StopAfter(0, threading.Event())
    job.run(VerifyRequest(resume=True), again)
    assert again.verified == digests


def test_resume_skips_the_locations_an_interrupted_pass_finished(
    services: RegistryServices,
    repo: RepositoryReference,
    model: SqlRegistryModel,
    locations: StorageLocations,
    job: VerifyJob,
    tmp_path: Path,
) -> None:
    digests = sorted(_push(services, repo, f"blob {i}".encode() * 500) for i in range(3))
    ReplicationService(model, locations).run_once()
    stop = threading.Event()
    job.run(VerifyRequest(), _StopAfter(4, stop), stop)  # all of primary, one of replica
    resumed = _StopAfter(0, threading.Event())
    report = job.run(VerifyRequest(resume=True), resumed)
    assert [location.location for location in report.locations] == ["replica"]
    assert resumed.verified == digests[1:]


def test_a_stop_in_the_middle_of_a_blob_does_not_count_it(
    services: RegistryServices, repo: RepositoryReference, job: VerifyJob, tmp_path: Path
) -> None:
    big = _push(services, repo, b"b" * (3 << 20))  # three read chunks
    stop = threading.Event()

    class StopWhileReading(_StopAfter):
        def advanced(self, location: str, size: int) -> None:
            super().advanced(location, size)
            stop.set()

    report = job.run(VerifyRequest(locations=("primary",)), StopWhileReading(99, stop), stop)
    assert report.stopped and report.locations[0].checked == 0
    resumed = _StopAfter(0, threading.Event())
    job.run(VerifyRequest(resume=True, locations=("primary",)), resumed)
    assert resumed.verified == [big]


def test_the_byte_rate_bounds_what_is_read_per_second() -> None:
    now = [100.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    rate = ByteRate(1000, clock=lambda: now[0], sleep=sleep)
    taken = 0
    for _ in range(50):
        rate.take(300)
        taken += 300
        # Never more than a second's burst beyond the rate, whatever the chunking.
        assert taken <= 1000 + 1000 * (now[0] - 100.0) + 1e-6
    assert rate.sleeps == len(sleeps) == 47  # the first 1000 bytes (3 chunks) pass at once
    assert sum(sleeps) == pytest.approx((50 * 300 - 1000) / 1000)
    now[0] += 10  # idle time refills only one second's worth
    rate.take(1000)
    rate.take(1)
    assert rate.sleeps == 48
    with pytest.raises(ValueError):
        ByteRate(0)


def test_a_rate_limited_pass_sleeps_off_its_budget(
    services: RegistryServices,
    repo: RepositoryReference,
    model: SqlRegistryModel,
    locations: StorageLocations,
    tmp_path: Path,
) -> None:
    for i in range(4):
        _push(services, repo, bytes([i]) * 200_000)
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    verifier = StorageVerifier(model, locations)
    job = VerifyJob(verifier, tmp_path / CHECKPOINT_FILE, sleep=sleep, clock=lambda: now[0])
    report = job.run(VerifyRequest(rate=100_000, locations=("primary",)))
    assert report.locations[0].bytes == 800_000
    assert report.rate_waits == len(slept) == 4
    # 800 kB at 100 kB/s with a one-second burst: 7 s of sleeping.
    assert sum(slept) == pytest.approx(7.0) and report.rate_wait_s == pytest.approx(7.0)
    unlimited = VerifyJob(verifier, tmp_path / CHECKPOINT_FILE, sleep=sleep).run(VerifyRequest())
    assert (unlimited.rate_waits, unlimited.rate_wait_s, len(slept)) == (0, 0.0, 4)


def test_a_repair_racing_the_quarantine_keeps_its_placement(
    services: RegistryServices,
    repo: RepositoryReference,
    model: SqlRegistryModel,
    locations: StorageLocations,
    tmp_path: Path,
) -> None:
    """A genuine upload completing between the move and the placement removal (step 3)."""
    data = b"raced " * 4000
    digest = _push(services, repo, data)
    _flip_a_byte(_file(tmp_path, "primary", digest))

    class UploadInBetween(SqlRegistryModel):
        def remove_blob_placement(self, blob: Any, location_name: str) -> bool:
            _push(services, repo, data)  # stores genuine bytes under the freed key
            return super().remove_blob_placement(blob, location_name)

    racing = UploadInBetween(model.database, locations=model.locations)
    (bad,) = StorageVerifier(racing, locations).verify_location("primary", VerifyPass()).corrupt
    assert bad.placement_removed
    blob = model.lookup_blob(digest)
    assert blob is not None and blob.placements == ("primary",)
    assert _served(services, repo, digest) == data


def test_quarantine_keys_are_never_blob_keys() -> None:
    digest = "sha256:" + "ab" * 32
    from datetime import UTC, datetime

    key = keys.quarantine_key(digest, datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC))
    assert key == f"_quarantine/sha256/{'ab' * 32}/20260102T030405.000006Z"
    assert keys.validate_key(key) == key
    assert keys.digest_of_blob_key(key) is None
    assert keys.digest_of_blob_key(keys.blob_key(digest)) == digest
    for other in ("blobs/sha256/cd/" + "ab" * 32, "blobs/md5/ab/abab", "derived/ab/x/data"):
        assert keys.digest_of_blob_key(other) is None


def test_over_s3_a_corrupt_object_is_quarantined_and_repaired(
    seaweedfs_s3: S3Server,  # noqa: F811
    model: SqlRegistryModel,
    tmp_path: Path,
) -> None:
    prefix = unique_prefix()
    driver = create_driver("s3", **seaweedfs_s3.driver_options(prefix))
    locations = StorageLocations({"primary": driver}, "primary")
    services = build_services(model, locations)
    repo = services.repositories.for_write("acme/app")
    data = b"in a bucket " * 20_000
    digest = _push(services, repo, data)
    full_key = f"{prefix}/{keys.blob_key(digest)}"
    seaweedfs_s3.client.put_object(Bucket=seaweedfs_s3.bucket, Key=full_key, Body=b"X" + data[1:])
    job = VerifyJob(StorageVerifier(model, locations), tmp_path / CHECKPOINT_FILE)

    (bad,) = job.run(VerifyRequest(dry_run=False)).locations[0].corrupt

    assert bad.digest == digest and bad.placement_removed and bad.quarantine_key is not None
    entries = seaweedfs_s3.raw_entries(prefix)
    assert bad.quarantine_key in entries and keys.blob_key(digest) not in entries
    with pytest.raises(BlobNotFoundError):
        services.blobs.content(repo, digest)
    _push(services, repo, data)
    assert _served(services, repo, digest) == data
    seaweedfs_s3.clear(prefix)


def test_replication_repairs_a_quarantined_copy_from_a_good_one(
    services: RegistryServices,
    repo: RepositoryReference,
    model: SqlRegistryModel,
    locations: StorageLocations,
    job: VerifyJob,
    tmp_path: Path,
) -> None:
    data = b"two copies " * 3000
    digest = _push(services, repo, data)
    ReplicationService(model, locations).run_once()
    _flip_a_byte(_file(tmp_path, "replica", digest))
    assert job.run(VerifyRequest()).corrupt == 1
    assert ReplicationService(model, locations).run_once().copied == 1
    blob = model.lookup_blob(digest)
    assert blob is not None and blob.placements == ("primary", "replica")
    assert _file(tmp_path, "replica", digest).read_bytes() == data
    assert job.run(VerifyRequest()).corrupt == 0


# -- parsers, as an attacker would feed them -----------------------------------------------

_KEYISH = st.text(alphabet="blobsha256512:/._-abcdef0123456789XZ", max_size=160)


@given(key=st.one_of(_KEYISH, st.text(max_size=200)))
@settings(max_examples=300, deadline=None)
def test_only_well_formed_blob_keys_name_a_digest(key: str) -> None:
    digest = keys.digest_of_blob_key(key)
    if digest is not None:
        assert keys.blob_key(digest) == key


@given(hex_=st.text(alphabet="0123456789abcdef", min_size=64, max_size=64))
@settings(max_examples=50, deadline=None)
def test_every_blob_key_names_its_digest(hex_: str) -> None:
    assert keys.digest_of_blob_key(keys.blob_key(f"sha256:{hex_}")) == f"sha256:{hex_}"


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=80),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=12,
)


@given(
    document=st.one_of(
        _JSON,
        st.fixed_dictionaries(
            {"version": st.just(1), "locations": st.dictionaries(st.text(max_size=8), _JSON)}
        ),
    ),
    raw=st.binary(max_size=64),
)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_a_damaged_checkpoint_is_one_clear_error(document: Any, raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / CHECKPOINT_FILE
        for content in (json.dumps(document).encode(), raw):
            path.write_bytes(content)
            try:
                loaded = Checkpoint.load(path)
            except ConfigError as exc:
                assert str(path) in str(exc)
                continue
            for mark in loaded.marks.values():
                assert mark.after is None or mark.after.startswith(("sha256:", "sha512:"))


def test_an_unreadable_copy_is_reported_left_in_place_and_the_pass_goes_on(
    services: RegistryServices,
    repo: RepositoryReference,
    model: SqlRegistryModel,
    job: VerifyJob,
    tmp_path: Path,
) -> None:
    """A link planted under ``blobs/`` pointing out of the root: never followed."""
    outside = tmp_path / "outside"
    outside.write_bytes(b"not ours")
    planted = "sha256:" + "0" * 64
    link = _file(tmp_path, "primary", planted)
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(outside)
    sound = _push(services, repo, b"a sound blob")

    report = job.run(VerifyRequest(locations=("primary",)))

    primary = report.locations[0]
    (unreadable,) = primary.unreadable
    assert unreadable.digest == planted and "escapes the root" in unreadable.error
    assert (primary.checked, primary.corrupt, primary.complete) == (1, (), True)
    assert report.unreadable == 1 and report.corrupt == 0
    assert link.is_symlink() and outside.read_bytes() == b"not ours"
    assert _served(services, repo, sound) == b"a sound blob"
