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
from bench.servers import MOORAGE, REFERENCE

MACHINE = "machine"
RSS_LIMIT_MB = 150.0
DISK_SHARE = 0.8


@dataclass(frozen=True)
class Target:
    text: str
    check: Callable[[Row], bool | None]


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

    @property
    def ratio(self) -> float | None:
        ref, moo = self.value(REFERENCE), self.value(MOORAGE)
        if ref is None or moo is None or ref == 0:
            return None
        return moo / ref

    @property
    def pass_ratios(self) -> list[float]:
        """Moorage/reference pass by pass: both servers measured in the same pass, so this
        spread shows how much the machine moved between passes."""
        refs, moos = self.samples.get(REFERENCE, []), self.samples.get(MOORAGE, [])
        return [moo / ref for ref, moo in zip(refs, moos, strict=False) if ref]


def _ratio_at_least(limit: float) -> Target:
    return Target(f"≥ {limit:g}x", lambda row: None if row.ratio is None else row.ratio >= limit)


def _ratio_at_most(limit: float) -> Target:
    return Target(f"≤ {limit:g}x", lambda row: None if row.ratio is None else row.ratio <= limit)


def _moorage_at_most(limit: float, unit: str) -> Target:
    def check(row: Row) -> bool | None:
        value = row.value(MOORAGE)
        return None if value is None else value <= limit

    return Target(f"moorage ≤ {limit:g} {unit}", check)


def _moorage_at_least(limit: float, unit: str) -> Target:
    def check(row: Row) -> bool | None:
        value = row.value(MOORAGE)
        return None if value is None else value >= limit

    return Target(f"moorage ≥ {limit:g}{unit}", check)


_HOT = r"(manifest-tag|manifest-digest|blob-head|tags-list)(-anon|-bearer)?-c(16|64)"
TARGETS: list[tuple[str, Target]] = [
    (r"(push-.*|image-push-.*)", _ratio_at_least(3)),
    (r"pull-.*", _ratio_at_least(1.5)),
    (_HOT, _ratio_at_least(5)),
    (_HOT + "-p99", _ratio_at_most(0.2)),
    (r"(rss|pss)-.*", _moorage_at_most(RSS_LIMIT_MB, "MB")),
    (r"disk-share", _moorage_at_least(DISK_SHARE * 100, " %")),
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
        into = rows if m.server in (REFERENCE, MOORAGE) else machine
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


def _met(row: Row) -> tuple[str, str]:
    target = target_of(row.key)
    if target is None:
        return "", ""
    verdict = target.check(row)
    return target.text, {True: "met", False: "NOT met", None: "—"}[verdict]


def _spread(values: list[float]) -> str:
    return "—" if not values else f"{min(values):.2f}..{max(values):.2f}"


def table(rows: list[Row], machine: list[Row]) -> str:
    """The table; with several passes (``--runs``), a column of the per-pass ratio range."""
    lines = [f"{row.label}: {_fmt(row.value(MACHINE))} {row.unit}" for row in machine]
    ceilings = {row.key: row for row in machine}
    passes = any(len(row.pass_ratios) > 1 for row in rows)
    shares = any(ceiling_key(row.key) in ceilings for row in rows)
    header = ["workload", "unit", "reference", "moorage", "ratio M/R"]
    header += ["ratio per pass"] if passes else []
    header += ["ceiling", "R % ceil", "M % ceil"] if shares else []
    header += ["target", "verdict"]
    body = [header, ["---"] * len(header)]
    for row in rows:
        target, verdict = _met(row)
        ratio = row.ratio
        cells = [
            row.label,
            row.unit,
            _fmt(row.value(REFERENCE)),
            _fmt(row.value(MOORAGE)),
            "—" if ratio is None else f"{ratio:.2f}",
        ]
        cells += [_spread(row.pass_ratios)] if passes else []
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
        target, verdict = _met(row)
        out_rows.append(
            {
                **{k: v for k, v in asdict(row).items() if k != "samples"},
                REFERENCE: row.value(REFERENCE),
                MOORAGE: row.value(MOORAGE),
                "ratio": row.ratio,
                "pass_ratios": row.pass_ratios,
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
