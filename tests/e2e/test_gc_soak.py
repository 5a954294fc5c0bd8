"""The GC soak of issue 14 at CI size (``bench/gc_soak.py`` runs the full size): two
``moorage serve`` processes on one PostgreSQL database and one SeaweedFS bucket, GC every
second, six clients pushing, mounting, pulling, moving, deleting and restoring for 70 s.
No pull of live content may fail, every tagged image pulls back bit-identical, and
after everything is deleted the rows and objects return to their baseline (a dry run first
changes nothing)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from bench.gc_soak import S3Target, SoakOptions, run_soak, summary_line

from support.s3servers import S3Server, unique_prefix

LOAD_S = float(os.environ.get("MOORAGE_TEST_GC_SOAK_S", "70"))


@pytest.mark.slow
def test_gc_soak_loses_nothing_and_returns_to_the_baseline(
    fresh_postgres_url: str, seaweedfs_s3: S3Server, tmp_path: Path
) -> None:
    target = S3Target(seaweedfs_s3.driver_options(unique_prefix()), seaweedfs_s3.client)
    options = SoakOptions(duration_s=LOAD_S, clients=6, seed=14)
    report = run_soak(options, fresh_postgres_url, target, tmp_path)
    print(summary_line(report))
    print(json.dumps({k: v for k, v in report.items() if k != "options"}, default=str))
    assert report["failures"] == [], "\n".join(report["failures"][:40])
    operations = report["operations"]
    # The load did what it claims: every kind of operation ran, and often.
    for kind in ("push", "pull-tag", "pull-digest", "move-tag", "delete-tag", "restore"):
        assert operations.get(kind, 0) >= 10, (kind, operations)
    assert report["outcomes"].get("restore:restored", 0) >= 5, report["outcomes"]
    assert report["outcomes"].get("blob-mount:mounted", 0) >= 5, report["outcomes"]
    assert report["tags_at_end"] > 0
    assert report["gc_passes_during_load"] >= LOAD_S / 4
    assert report["bytes_reclaimed_at_end"] > 0
