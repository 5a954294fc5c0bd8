"""The bench's table: medians over passes, the ratio and its per-pass spread, the verdicts.
(Aggregation and formatting only: no timing is asserted here.)"""

from __future__ import annotations

import json

from bench.model import Measure
from bench.report import as_json, collect, table
from bench.servers import BEFORE, MOORAGE, REFERENCE


def _passes(key: str, label: str, reference: list[float], moorage: list[float]) -> list[Measure]:
    out = [Measure(key, label, "req/s", REFERENCE, value) for value in reference]
    return out + [Measure(key, label, "req/s", MOORAGE, value) for value in moorage]


def test_several_passes_give_medians_and_the_per_pass_ratio_range() -> None:
    rows, machine = collect(
        _passes("tags-list-c16", "tags/list, c16", [1000, 2000, 1500], [6000, 8000, 9000])
    )
    printed = table(rows, machine)
    assert "ratio per pass" in printed
    line = next(line for line in printed.splitlines() if line.startswith("| tags/list"))
    cells = [cell.strip() for cell in line.strip("|").split("|")]
    # medians 1,500 and 8,000; per pass 6.00, 4.00, 6.00; no ceiling measured: no verdict
    assert cells[2:] == ["1,500", "8,000", "5.33", "4.00..6.00", "≥ 50 % of hello-world", "—"]
    exported = json.loads(as_json(rows, machine, {}))["rows"][0]
    assert exported["pass_ratios"] == [6.0, 4.0, 6.0]


def test_one_pass_prints_no_spread_column() -> None:
    rows, machine = collect(_passes("tags-list-c64", "tags/list, c64", [1000], [4000]))
    printed = table(rows, machine)
    assert "ratio per pass" not in printed
    assert "met" not in printed


def _verdicts(measures: list[Measure]) -> dict[str, tuple[float | None, str | None]]:
    rows, machine = collect(measures)
    exported = json.loads(as_json(rows, machine, {}))["rows"]
    return {r["key"]: (r["moorage_pct_of_ceiling"], r["verdict"]) for r in exported}


def test_verdicts_are_shares_of_the_ceilings_measured_in_the_same_run() -> None:
    hello = [
        Measure("hello-get-c16", "hello GET c16", "req/s", "machine", 20_000),
        Measure("hello-head-c16", "hello HEAD c16", "req/s", "machine", 20_000),
        Measure("hello-get-c1-p50", "hello GET c1 p50", "ms", "machine", 0.1, False),
        Measure("nginx-pull-1 GiB", "nginx 1 GiB", "MB/s", "machine", 2_000),
        Measure("disk", "durable disk", "MB/s", "machine", 400),
    ]
    measures = [
        *hello,
        *_passes("tags-list-bearer-c16", "tags/list c16", [1_000], [12_000]),
        *_passes("blob-head-bearer-c16", "blob HEAD c16", [1_000], [9_000]),
        Measure("tags-list-bearer-c1-p50", "p50", "ms", MOORAGE, 0.18, False),
        Measure("blob-head-bearer-c1-p50", "p50", "ms", MOORAGE, 0.3, False),
        Measure("pull-1 GiB", "pull 1 GiB", "MB/s", MOORAGE, 1_700),
        Measure("push-concurrent", "8 pushers", "MB/s", MOORAGE, 380),
    ]
    got = _verdicts(measures)
    assert got["tags-list-bearer-c16"] == (60.0, "met")
    assert got["blob-head-bearer-c16"] == (45.0, "NOT met")  # against HEAD's ceiling
    assert got["tags-list-bearer-c1-p50"][1] == "met"  # 0.18 ms is under twice 0.1 ms
    assert got["blob-head-bearer-c1-p50"] == (None, "—")  # no HEAD p50 ceiling measured
    assert got["pull-1 GiB"] == (85.0, "NOT met")
    assert got["push-concurrent"] == (95.0, "met")


def test_image_pushes_are_judged_against_the_older_checkout_in_the_same_run() -> None:
    measures = [
        *_passes("image-push-p1", "image push, 1 in parallel", [2.5], [3.9]),
        Measure("image-push-p1", "image push, 1 in parallel", "images/s", BEFORE, 2.0),
        *_passes("image-push-p3", "image push, 3 in parallel", [3.4], [4.4]),
        Measure("image-push-p3", "image push, 3 in parallel", "images/s", BEFORE, 4.0),
    ]
    rows, machine = collect(measures)
    printed = table(rows, machine)
    assert "M/before" in printed
    exported = {r["key"]: r for r in json.loads(as_json(rows, machine, {}))["rows"]}
    assert exported["image-push-p1"]["ratio_to_before"] == 1.95
    assert exported["image-push-p1"]["verdict"] == "met"
    assert exported["image-push-p3"]["verdict"] == "NOT met"  # 1.1x the older code
    assert exported["image-push-p3"]["ratio"] == 4.4 / 3.4  # the reference ratio is unchanged


def test_without_the_older_checkout_image_pushes_have_no_verdict() -> None:
    rows, machine = collect(_passes("image-push-p1", "image push", [2.5], [3.9]))
    assert "M/before" not in table(rows, machine)
    (exported,) = json.loads(as_json(rows, machine, {}))["rows"]
    assert (exported["ratio_to_before"], exported["verdict"]) == (None, "—")
