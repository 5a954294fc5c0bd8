"""Aggregate the runs (median of K) and print the table or JSON, with the issue's targets."""

from __future__ import annotations

import json
import math
import re
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.model import Measure
from bench.servers import BEFORE, MOORAGE, REFERENCE

MACHINE = "machine"
RSS_LIMIT_MB = 150.0


@dataclass(frozen=True)
class Target:
    text: str
    # (the row, the machine's ceilings by key) -> met, not met, or None (not measured)
    check: Callable[[Row, dict[str, Row]], bool | None]


@dataclass
class Row:
    key: str
    label: str
    unit: str
    higher_is_better: bool
    samples: dict[str, list[float]] = field(default_factory=dict)

    def value(self, server: str) -> float | None:
        values = self.samples.get(server)
        return statistics.median(values) if values else None

    def _moorage_over(self, server: str) -> float | None:
        other, moo = self.value(server), self.value(MOORAGE)
        if other is None or moo is None or other == 0:
            return None
        return moo / other

    @property
    def ratio(self) -> float | None:
        return self._moorage_over(REFERENCE)

    @property
    def ratio_to_before(self) -> float | None:
        """Moorage over the older checkout (``--before-src``), where both were measured."""
        return self._moorage_over(BEFORE)

    @property
    def pass_ratios(self) -> list[float]:
        """Moorage/reference pass by pass: both servers measured in the same pass, so this
        spread shows how much the machine moved between passes."""
        refs, moos = self.samples.get(REFERENCE, []), self.samples.get(MOORAGE, [])
        return [moo / ref for ref, moo in zip(refs, moos, strict=False) if ref]


def _share_at_least(percent: float, of: str) -> Target:
    """Moorage's figure at least ``percent`` of its ceiling (for latencies: the ceiling's
    latency at least ``percent`` of Moorage's, so 50 % reads 'at most twice the ceiling's')."""

    def check(row: Row, ceilings: dict[str, Row]) -> bool | None:
        value = share(row, MOORAGE, ceilings)
        return None if value is None else value >= percent

    return Target(f"≥ {percent:g} % of {of}", check)


def _moorage_at_most(limit: float, unit: str) -> Target:
    def check(row: Row, _ceilings: dict[str, Row]) -> bool | None:
        value = row.value(MOORAGE)
        return None if value is None else value <= limit

    return Target(f"moorage ≤ {limit:g} {unit}", check)


def _times_before(factor: float) -> Target:
    def check(row: Row, _ceilings: dict[str, Row]) -> bool | None:
        ratio = row.ratio_to_before
        return None if ratio is None else ratio >= factor

    return Target(f"≥ {factor:g}x before", check)


# Issue 16's targets, each against the machine's ceiling measured in the same run, or for the
# image pushes against the code before the issue (--before-src) in the same run.
_HOT = r"(manifest-tag|manifest-digest|blob-head|tags-list)(-anon|-bearer)?"
TARGETS: list[tuple[str, Target]] = [
    (_HOT + "-c(16|64)", _share_at_least(50, "hello-world")),
    (_HOT + "-c1-p50", _share_at_least(50, "hello-world (p50 ≤ 2x)")),
    (r"pull-(256 MiB|1 GiB)", _share_at_least(90, "nginx")),
    (r"push-mono-(256 MiB|1 GiB)|push-concurrent", _share_at_least(90, "disk")),
    (r"(rss|pss)-.*", _moorage_at_most(RSS_LIMIT_MB, "MB")),
    (r"image-push-p\d+", _times_before(1.5)),
]


_SMALL = re.compile(
    r"(manifest-tag|manifest-digest|tags-list|blob-head)(?:-(?:anon|bearer))?-c(\d+)(-p50|-p99)?"
)


def ceiling_key(key: str) -> str | None:
    """The machine row a workload is measured against: the durable disk rate for pushes,
    nginx's sendfile GET of the same size for pulls, the hello-world ASGI app on the same
    server stack (GET with wrk, HEAD with hey) for the small requests."""
    if key.startswith("push-"):
        return "disk"
    if key.startswith("pull-"):
        return "nginx-" + key
    if small := _SMALL.fullmatch(key):
        method = "head" if small.group(1) == "blob-head" else "get"
        return f"hello-{method}-c{small.group(2)}{small.group(3) or ''}"
    return None


def share(row: Row, server: str, ceilings: dict[str, Row]) -> float | None:
    """``server``'s figure as a % of its ceiling; for latencies the ceiling's over the
    figure's (50 % = twice the hello-world's latency)."""
    key = ceiling_key(row.key)
    ceiling = ceilings[key].value(MACHINE) if key in ceilings else None
    value = row.value(server)
    if not ceiling or not value:
        return None
    return 100 * (value / ceiling if row.higher_is_better else ceiling / value)


def target_of(key: str) -> Target | None:
    for pattern, target in TARGETS:
        if re.fullmatch(pattern, key):
            return target
    return None


def collect(measures: list[Measure]) -> tuple[list[Row], list[Row]]:
    """Rows per key (each server's samples over the runs), and the machine figures apart."""
    rows: dict[str, Row] = {}
    machine: dict[str, Row] = {}
    for m in measures:
        into = rows if m.server in (REFERENCE, MOORAGE, BEFORE) else machine
        row = into.setdefault(m.key, Row(m.key, m.label, m.unit, m.higher_is_better))
        row.samples.setdefault(m.server, []).append(m.value)
    return list(rows.values()), list(machine.values())


def _fmt(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "—"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _met(row: Row, ceilings: dict[str, Row]) -> tuple[str, str]:
    target = target_of(row.key)
    if target is None:
        return "", ""
    verdict = target.check(row, ceilings)
    return target.text, {True: "met", False: "NOT met", None: "—"}[verdict]


def _spread(values: list[float]) -> str:
    return "—" if not values else f"{min(values):.2f}..{max(values):.2f}"


def table(rows: list[Row], machine: list[Row]) -> str:
    """The table; with several passes (``--runs``), a column of the per-pass ratio range."""
    lines = [f"{row.label}: {_fmt(row.value(MACHINE))} {row.unit}" for row in machine]
    ceilings = {row.key: row for row in machine}
    passes = any(len(row.pass_ratios) > 1 for row in rows)
    shares = any(ceiling_key(row.key) in ceilings for row in rows)
    befores = any(row.value(BEFORE) is not None for row in rows)
    header = ["workload", "unit", "reference", "moorage", "ratio M/R"]
    header += ["ratio per pass"] if passes else []
    header += ["before", "M/before"] if befores else []
    header += ["ceiling", "R % ceil", "M % ceil"] if shares else []
    header += ["target", "verdict"]
    body = [header, ["---"] * len(header)]
    for row in rows:
        target, verdict = _met(row, ceilings)
        ratio = row.ratio
        cells = [
            row.label,
            row.unit,
            _fmt(row.value(REFERENCE)),
            _fmt(row.value(MOORAGE)),
            "—" if ratio is None else f"{ratio:.2f}",
        ]
        cells += [_spread(row.pass_ratios)] if passes else []
        if befores:
            to_before = row.ratio_to_before
            cells += [_fmt(row.value(BEFORE)), "—" if to_before is None else f"{to_before:.2f}"]
        if shares:
            key = ceiling_key(row.key)
            cells += [_fmt(ceilings[key].value(MACHINE)) if key in ceilings else "—"]
            cells += [_fmt(share(row, server, ceilings)) for server in (REFERENCE, MOORAGE)]
        body.append([*cells, target, verdict])
    widths = [max(len(r[i]) for r in body) for i in range(len(header))]
    for r in body:
        cells = [("-" * widths[i]) if c == "---" else c.ljust(widths[i]) for i, c in enumerate(r)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def as_json(rows: list[Row], machine: list[Row], meta: dict[str, Any]) -> str:
    ceilings = {row.key: row for row in machine}
    out_rows = []
    for row in rows:
        target, verdict = _met(row, ceilings)
        out_rows.append(
            {
                **{k: v for k, v in asdict(row).items() if k != "samples"},
                REFERENCE: row.value(REFERENCE),
                MOORAGE: row.value(MOORAGE),
                "ratio": row.ratio,
                "pass_ratios": row.pass_ratios,
                BEFORE: row.value(BEFORE),
                "ratio_to_before": row.ratio_to_before,
                "ceiling": ceiling_key(row.key) if ceiling_key(row.key) in ceilings else None,
                "reference_pct_of_ceiling": share(row, REFERENCE, ceilings),
                "moorage_pct_of_ceiling": share(row, MOORAGE, ceilings),
                "target": target or None,
                "verdict": verdict or None,
                "samples": row.samples,
            }
        )
    machine_out = {
        row.key: {"label": row.label, "unit": row.unit, "value": row.value(MACHINE)}
        for row in machine
    }
    return json.dumps({**meta, "machine_figures": machine_out, "rows": out_rows}, indent=2)
