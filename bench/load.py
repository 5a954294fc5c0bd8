"""Request-rate and latency workloads: ``wrk`` for GETs, ``hey`` for HEAD (wrk's parser waits
for a body after a HEAD answer with Content-Length and records nothing). Debian packages
``wrk`` and ``hey``."""

from __future__ import annotations

import csv
import io
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.client import ACCEPT
from bench.images import Seeded
from bench.model import Measure, Plan

_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_LATENCY = re.compile(r"^\s*(50|99)(?:\.000)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.MULTILINE)
_RATE = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKET_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


def missing_tools() -> list[str]:
    """What to install for the load rows: wrk (GETs) and hey (HEAD: wrk waits for a body)."""
    return [
        f"{tool} not found: apt-get install -y {tool}"
        for tool in ("wrk", "hey")
        if shutil.which(tool) is None
    ]


@dataclass(frozen=True)
class Endpoint:
    key: str
    label: str
    method: str
    path: str


def endpoints(seeded: Seeded, repo: str) -> list[Endpoint]:
    return [
        Endpoint(
            "manifest-tag", "manifest GET by tag", "GET", f"/v2/{repo}/manifests/{seeded.tag}"
        ),
        Endpoint(
            "manifest-digest",
            "manifest GET by digest",
            "GET",
            f"/v2/{repo}/manifests/{seeded.manifest_digest}",
        ),
        Endpoint("blob-head", "blob HEAD", "HEAD", f"/v2/{repo}/blobs/{seeded.layer_digest}"),
        Endpoint("tags-list", "tags/list", "GET", f"/v2/{repo}/tags/list"),
    ]


@dataclass(frozen=True)
class Target:
    """Where one server's requests of a variant go, and the header they carry."""

    server: str  # the name the table knows (reference, moorage)
    base_url: str
    repo: str
    authorization: str | None


@dataclass(frozen=True)
class Variant:
    """How the small requests are asked: anonymously on a public repository, or with a
    bearer token on a private one."""

    key: str
    label: str
    targets: tuple[Target, ...]


@dataclass(frozen=True)
class LoadResult:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


def parse_wrk(output: str) -> LoadResult:
    rate = _RATE.search(output)
    latencies = {
        m.group(1): float(m.group(2)) * _UNITS_MS[m.group(3)] for m in _LATENCY.finditer(output)
    }
    if rate is None or set(latencies) != {"50", "99"} or float(rate.group(1)) == 0:
        raise RuntimeError(f"unexpected wrk output:\n{output}")
    errors = sum(int(n) for n in _NON_2XX.findall(output))
    for match in _SOCKET_ERRORS.finditer(output):
        errors += sum(int(n) for n in match.groups())
    return LoadResult(float(rate.group(1)), latencies["50"], latencies["99"], errors)


def run_wrk(
    url: str, script: Path, connections: int, seconds: int, authorization: str | None = None
) -> LoadResult:
    threads = min(2, connections)
    argv = [
        "wrk",
        *(["-H", f"Authorization: {authorization}"] if authorization else []),
        "--latency",
        "-t",
        str(threads),
        "-c",
        str(connections),
        "-d",
        f"{seconds}s",
        "--timeout",
        "5s",
        "-s",
        str(script),
        url,
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return parse_wrk(done.stdout)


def run_hey_head(
    url: str, connections: int, seconds: int, authorization: str | None = None
) -> LoadResult:
    """HEAD load with hey; percentiles computed from its per-request CSV (full precision).
    ``-cpus 1`` (GOMAXPROCS=1): spread over both cores of a 2-core machine, hey took CPU from
    whichever server it loaded; on one, both servers answered more HEADs (reference c16 +17 %,
    Moorage +12-28 %, alternating runs)."""
    argv = [
        "hey",
        *(["-H", f"Authorization: {authorization}"] if authorization else []),
        "-cpus",
        "1",
        "-z",
        f"{seconds}s",
        "-c",
        str(connections),
        "-m",
        "HEAD",
        "-t",
        "5",
        "-o",
        "csv",
        url,
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"hey failed ({done.returncode}): {done.stderr or done.stdout}")
    return parse_hey_csv(done.stdout, seconds)


def parse_hey_csv(output: str, seconds: int) -> LoadResult:
    rows = list(csv.DictReader(io.StringIO(output)))
    if not rows:
        raise RuntimeError(f"hey answered no requests:\n{output[:500]}")
    latencies = sorted(float(row["response-time"]) * 1e3 for row in rows)
    errors = sum(1 for row in rows if not row["status-code"].startswith(("2", "3")))
    elapsed = max(float(r["offset"]) + float(r["response-time"]) for r in rows)

    def percentile(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))]

    return LoadResult(len(rows) / max(elapsed, seconds), percentile(0.5), percentile(0.99), errors)


def wrk_script(directory: Path, method: str) -> Path:
    path = directory / f"wrk-{method.lower()}.lua"
    path.write_text(f'wrk.method = "{method}"\nwrk.headers["Accept"] = "{ACCEPT}"\n')
    return path


def _check(url: str, method: str, authorization: str | None) -> None:
    """One request first: a variant that is refused would measure only 401s."""
    headers = {"Accept": ACCEPT, **({"Authorization": authorization} if authorization else {})}
    answer = httpx.request(method, url, headers=headers, timeout=10)
    if answer.status_code != 200:
        raise RuntimeError(f"{method} {url}: {answer.status_code} {answer.text[:200]}")


def latency(variants: list[Variant], plan: Plan, seeded: Seeded, workdir: Path) -> list[Measure]:
    out = []
    for variant in variants:
        for index in range(len(endpoints(seeded, ""))):
            out += _one_endpoint(variant, index, plan, seeded, workdir)
    return out


def _one_endpoint(
    variant: Variant, index: int, plan: Plan, seeded: Seeded, workdir: Path
) -> list[Measure]:
    out = []
    probe = endpoints(seeded, "")[index]
    script = wrk_script(workdir, probe.method)
    for connections in plan.concurrencies:
        for target in variant.targets:
            endpoint = endpoints(seeded, target.repo)[index]
            url = target.base_url + endpoint.path
            _check(url, endpoint.method, target.authorization)
            # A short untimed run first: the timed one then measures the steady state,
            # not new connections and the first touch of memory (both servers alike).
            for seconds in (plan.warmup_seconds, plan.latency_seconds):
                if endpoint.method == "HEAD":
                    result = run_hey_head(url, connections, seconds, target.authorization)
                else:
                    result = run_wrk(url, script, connections, seconds, target.authorization)
            key = f"{endpoint.key}-{variant.key}-c{connections}"
            label = f"{endpoint.label}, {variant.label}, c{connections}"
            name = target.server
            out += [
                Measure(key, label, "req/s", name, result.rps),
                Measure(key + "-p50", label + " p50", "ms", name, result.p50_ms, False),
                Measure(key + "-p99", label + " p99", "ms", name, result.p99_ms, False),
            ]
            if result.errors:  # kept visible in the table rather than aborting the run
                out.append(
                    Measure(
                        key + "-errors",
                        label + " errors or non-2xx",
                        "count",
                        name,
                        result.errors,
                        False,
                    )
                )
    return out
