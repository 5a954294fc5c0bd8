"""The bench's table: medians over passes, the ratio and its per-pass spread, the verdicts.
(Aggregation and formatting only: no timing is asserted here.)"""

from __future__ import annotations

import json

from bench.model import Measure
from bench.report import as_json, collect, table
from bench.servers import MOORAGE, REFERENCE


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
    # medians 1,500 and 8,000; per pass 6.00, 4.00, 6.00; the target is 5x
    assert cells[2:] == ["1,500", "8,000", "5.33", "4.00..6.00", "≥ 5x", "met"]
    exported = json.loads(as_json(rows, machine, {}))["rows"][0]
    assert exported["pass_ratios"] == [6.0, 4.0, 6.0]


def test_one_pass_prints_no_spread_column() -> None:
    rows, machine = collect(_passes("tags-list-c64", "tags/list, c64", [1000], [4000]))
    printed = table(rows, machine)
    assert "ratio per pass" not in printed
    assert "NOT met" in printed
