"""What auth costs on the small hot requests: the same workloads against Moorage open and
Moorage with auth on, side by side in one run.

    .venv/bin/python -m bench.authcost [--quick] [--rounds K] [--only ENDPOINTS]
        [--concurrencies 1,16,64] [--seconds S] [--no-basic] [--old-src DIR]
        [--variants open,old-open,...]
        [--max-minutes M] [--save FILE]

Variants (each a row of the table; ratios are against ``open``):

* ``open``: ``moorage serve`` with MOORAGE_AUTH__ENABLED=false (what ``serve --open`` sets);
* ``anon-public``: auth on, no credentials, a public repository;
* ``bearer-private``: auth on, a private repository, a bearer token fetched once from
  ``/v2/auth`` with a user's Basic credentials (as docker does), lifetime longer than the run;
* ``basic-private``: auth on, the same user's Basic credentials on every request
  (``--no-basic`` leaves it out);
* ``old-open`` (with ``--old-src``): an older checkout's ``src`` run open (before auth existed).

Each point (endpoint x concurrency) runs the variants in turn (A B C A B C ...) ``--rounds``
times, so that whatever else the machine does touches every variant alike; medians reported.
Loopback only; bounded by ``--seconds`` per point and ``--max-minutes`` overall.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

if __package__ in (None, ""):  # `python bench/authcost.py`: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from bench import load
from bench.access import OWNER, READER, basic, moorage_cli, moorage_token
from bench.client import ACCEPT
from bench.data import small_blob
from bench.images import Image, build_image, layer_sizes, push_image, put_manifest
from bench.lean import LeanClient
from bench.servers import Server, start_moorage, tree_cpu_s

PUBLIC, PRIVATE = f"{OWNER}/public", f"{OWNER}/private"
TAG = "latest"
VARIANTS = ("open", "anon-public", "bearer-private", "basic-private", "old-open")
ENDPOINTS = ("manifest-tag", "manifest-digest", "blob-head", "tags-list")


def log(message: str) -> None:
    print(f"[authcost {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Target:
    """Where one variant sends its requests and the header it adds (if any)."""

    variant: str
    server: Server
    repo: str
    authorization: str | None


@dataclass(frozen=True)
class Seeded:
    manifest_digest: str
    layer_digest: str


def _image() -> Image:
    return build_image("authcost", layer_sizes(3, seed=3))


def image_digests() -> Seeded:
    """The digests of the image pushed (the same bytes everywhere)."""
    image = _image()
    return Seeded(small_blob(image.manifest)[1], image.layers[0][1])


def _seed(client: LeanClient, repo: str) -> Seeded:
    image = _image()
    digest = small_blob(image.manifest)[1]
    answered = push_image(client, repo, image, TAG)
    if answered and answered != digest:
        raise RuntimeError(f"{repo}: answered digest {answered}, expected {digest}")
    for extra in range(1, 10):  # a few more tags so tags/list is not trivial
        put_manifest(client, repo, f"v{extra}", image.manifest)
    return Seeded(digest, image.layers[0][1])


def prepare(workdir: Path, workers: int, old_src: Path | None, with_basic: bool) -> list[Target]:
    """Start the servers, push the same image everywhere, make the users and the token."""
    owner_password, reader_password = secrets.token_urlsafe(18), secrets.token_urlsafe(18)
    open_server = start_moorage(workdir, workers, name="open")
    servers = [open_server]
    auth_server = start_moorage(
        workdir,
        workers,
        name="auth",
        settings={
            "MOORAGE_AUTH__ENABLED": "true",
            "MOORAGE_AUTH__TOKEN_LIFETIME_S": "86400",  # longer than any run
            "MOORAGE_INITIAL_SUPERUSER": OWNER,
            "MOORAGE_INITIAL_SUPERUSER_PASSWORD": owner_password,
        },
    )
    servers.append(auth_server)
    old = None
    if old_src is not None:
        old = start_moorage(workdir, workers, name="old-open", pythonpath=str(old_src))
        servers.append(old)
    seeded = {}
    for server in servers:
        for repo in (PUBLIC, PRIVATE):
            if server is auth_server:
                client: LeanClient = LeanClient(server.base_url, basic(OWNER, owner_password))
            else:
                client = LeanClient(server.base_url)
            with client:
                seeded[server.name, repo] = _seed(client, repo)
    moorage_cli(auth_server, "repo", "visibility", PUBLIC, "public")
    moorage_cli(
        auth_server, "user", "create", READER, "--password-stdin", stdin=reader_password + "\n"
    )
    moorage_cli(auth_server, "repo", "grant", PRIVATE, "--role", "read", "--user", READER)
    token = moorage_token(auth_server, READER, reader_password, f"repository:{PRIVATE}:pull")
    digests = {s.manifest_digest for s in seeded.values()}
    if len(digests) != 1:
        raise RuntimeError(f"the servers answered different digests: {digests}")
    targets = [
        Target("open", open_server, PUBLIC, None),
        Target("anon-public", auth_server, PUBLIC, None),
        Target("bearer-private", auth_server, PRIVATE, f"Bearer {token}"),
    ]
    if with_basic:
        targets.append(
            Target("basic-private", auth_server, PRIVATE, basic(READER, reader_password))
        )
    if old is not None:
        targets.append(Target("old-open", old, PUBLIC, None))
    return targets


def _path(endpoint: str, repo: str, seeded: Seeded) -> tuple[str, str]:
    if endpoint == "manifest-tag":
        return "GET", f"/v2/{repo}/manifests/{TAG}"
    if endpoint == "manifest-digest":
        return "GET", f"/v2/{repo}/manifests/{seeded.manifest_digest}"
    if endpoint == "blob-head":
        return "HEAD", f"/v2/{repo}/blobs/{seeded.layer_digest}"
    return "GET", f"/v2/{repo}/tags/list"


def _wrk_script(directory: Path, target: Target) -> Path:
    path = directory / f"wrk-{target.variant}.lua"
    lines = ['wrk.method = "GET"', f'wrk.headers["Accept"] = "{ACCEPT}"']
    if target.authorization is not None:
        lines.append(f'wrk.headers["Authorization"] = "{target.authorization}"')
    path.write_text("\n".join(lines) + "\n")
    return path


def _hey_head(
    url: str, authorization: str | None, connections: int, seconds: int
) -> load.LoadResult:
    """``load.run_hey_head`` with an Authorization header."""
    argv = ["hey", "-cpus", "1", "-z", f"{seconds}s", "-c", str(connections), "-m", "HEAD"]
    if authorization is not None:
        argv += ["-H", f"Authorization: {authorization}"]
    argv += ["-t", "5", "-o", "csv", url]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"hey failed ({done.returncode}): {done.stderr or done.stdout}")
    return load.parse_hey_csv(done.stdout, seconds)


def _check(target: Target, method: str, path: str) -> None:
    """One request first: a variant that is refused would measure only 401s."""
    headers = {"Accept": ACCEPT}
    if target.authorization is not None:
        headers["Authorization"] = target.authorization
    answer = httpx.request(method, target.server.base_url + path, headers=headers, timeout=10)
    if answer.status_code != 200:
        raise RuntimeError(f"{target.variant} {method} {path}: {answer.status_code}")


@dataclass(frozen=True)
class Sample:
    endpoint: str
    connections: int
    variant: str
    round: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    # The server's CPU time per answered request (all its processes, user + system): far
    # less sensitive than the rates to what else the shared machine runs meanwhile.
    server_cpu_us: float


def _load(
    target: Target, method: str, url: str, connections: int, seconds: int, script: Path
) -> load.LoadResult:
    if method == "HEAD":
        return _hey_head(url, target.authorization, connections, seconds)
    return load.run_wrk(url, script, connections, seconds)


def measure(
    targets: list[Target],
    endpoints: list[str],
    concurrencies: list[int],
    rounds: int,
    seconds: int,
    warmup: int,
    workdir: Path,
    deadline: float,
) -> tuple[list[Sample], list[str]]:
    samples, notes = [], []
    scripts = {t.variant: _wrk_script(workdir, t) for t in targets}
    seeded = image_digests()
    for endpoint in endpoints:
        for connections in concurrencies:
            for round_ in range(rounds):
                if time.monotonic() > deadline:
                    notes.append(f"{endpoint} c{connections} round {round_ + 1}+: time is up")
                    break
                # Rotate the start so no variant always runs first (after a quiet moment).
                order = targets[round_ % len(targets) :] + targets[: round_ % len(targets)]
                for target in order:
                    method, path = _path(endpoint, target.repo, seeded)
                    if round_ == 0:
                        _check(target, method, path)
                    url = target.server.base_url + path
                    script = scripts[target.variant]
                    if warmup > 0:  # untimed: connections made, caches and CPUs warm
                        _load(target, method, url, connections, warmup, script)
                    cpu_before = tree_cpu_s(target.server.process.pid)
                    result = _load(target, method, url, connections, seconds, script)
                    cpu_s = tree_cpu_s(target.server.process.pid) - cpu_before
                    answered = max(result.rps * seconds, 1.0)
                    samples.append(
                        Sample(
                            endpoint,
                            connections,
                            target.variant,
                            round_,
                            result.rps,
                            result.p50_ms,
                            result.p99_ms,
                            result.errors,
                            cpu_s / answered * 1e6,
                        )
                    )
            log(f"{endpoint} c{connections} done")
    return samples, notes


def summarize(samples: list[Sample]) -> list[dict[str, object]]:
    """Median per (endpoint, concurrency, variant), and its ratios to ``open``."""
    groups: dict[tuple[str, int, str], list[Sample]] = {}
    for sample in samples:
        groups.setdefault((sample.endpoint, sample.connections, sample.variant), []).append(sample)
    rows = []
    for (endpoint, connections, variant), group in groups.items():
        rows.append(
            {
                "endpoint": endpoint,
                "connections": connections,
                "variant": variant,
                "rounds": len(group),
                "rps": statistics.median(s.rps for s in group),
                "p50_ms": statistics.median(s.p50_ms for s in group),
                "p99_ms": statistics.median(s.p99_ms for s in group),
                "server_cpu_us": statistics.median(s.server_cpu_us for s in group),
                "errors": sum(s.errors for s in group),
            }
        )
    # Each ratio is the median over rounds of (this variant / open in the same round): the
    # two ran seconds apart, so a burst of other work on the machine touches both.
    opens = {(s.endpoint, s.connections, s.round): s for s in samples if s.variant == "open"}
    for row in rows:
        for key in ("rps", "p50_ms", "p99_ms", "server_cpu_us"):
            paired = [
                getattr(s, key) / getattr(base, key)
                for s in groups[
                    str(row["endpoint"]), int(str(row["connections"])), str(row["variant"])
                ]
                if (base := opens.get((s.endpoint, s.connections, s.round))) is not None
                and getattr(base, key)
            ]
            row[f"{key}_ratio"] = statistics.median(paired) if paired else None
    return rows


def table(rows: list[dict[str, object]]) -> str:
    """Markdown: one line per endpoint, concurrency and variant; ratios against ``open``."""
    lines = [
        "| workload | c | variant | req/s | ratio | p50 ms | ratio | p99 ms | ratio "
        "| server CPU µs/req | ratio |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    order = {name: index for index, name in enumerate(VARIANTS)}
    endpoints = {name: index for index, name in enumerate(ENDPOINTS)}
    for row in sorted(
        rows,
        key=lambda r: (endpoints[str(r["endpoint"])], r["connections"], order[str(r["variant"])]),
    ):

        def ratio(key: str, row: dict[str, object] = row) -> str:
            value = row[f"{key}_ratio"]
            return (
                "" if not isinstance(value, float) or row["variant"] == "open" else f"{value:.2f}"
            )

        errors = f" ({row['errors']} errors)" if row["errors"] else ""
        lines.append(
            f"| {row['endpoint']} | {row['connections']} | {row['variant']}{errors} "
            f"| {row['rps']:,.0f} | {ratio('rps')} | {row['p50_ms']:.2f} | {ratio('p50_ms')} "
            f"| {row['p99_ms']:.2f} | {ratio('p99_ms')} "
            f"| {row['server_cpu_us']:.0f} | {ratio('server_cpu_us')} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.authcost", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="1 round, 2 s points: a smoke test")
    parser.add_argument("--rounds", type=int, default=3, help="A B C rounds per point (median)")
    parser.add_argument("--seconds", type=int, default=5, help="timed seconds per point")
    parser.add_argument("--warmup", type=int, default=1, help="untimed seconds before each")
    parser.add_argument("--only", default=",".join(ENDPOINTS), help="endpoints, comma-separated")
    parser.add_argument("--concurrencies", default="1,16,64", help="connections, comma-separated")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="serve --workers")
    parser.add_argument("--no-basic", action="store_true", help="leave out basic-private")
    parser.add_argument(
        "--variants", default=None, help="measure only these (comma-separated; open always)"
    )
    parser.add_argument(
        "--old-src", type=Path, default=None, help="another checkout's src, run open"
    )
    parser.add_argument("--max-minutes", type=float, default=20.0, help="stop starting points then")
    parser.add_argument("--save", type=Path, default=None, help="write samples and medians as JSON")
    args = parser.parse_args(argv)
    endpoints = [e.strip() for e in args.only.split(",") if e.strip()]
    if not endpoints or set(endpoints) - set(ENDPOINTS):
        parser.error(f"--only: choose from {','.join(ENDPOINTS)}")
    concurrencies = [int(c) for c in args.concurrencies.split(",")]
    if args.quick:
        args.rounds, args.seconds = 1, 2
    if missing := load.missing_tools():
        print("missing: " + "; ".join(missing), file=sys.stderr)
        return 2
    started = time.monotonic()
    deadline = started + args.max_minutes * 60
    load_before = os.getloadavg()[0]
    workdir = Path(tempfile.mkdtemp(prefix="moorage-authcost-"))
    targets: list[Target] = []
    try:
        targets = prepare(workdir, args.workers, args.old_src, not args.no_basic)
        if args.variants is not None:
            wanted = {"open", *(v.strip() for v in args.variants.split(","))}
            servers = {id(t.server): t.server for t in targets}.values()
            measured = [t for t in targets if t.variant in wanted]
            for server in servers:  # stop the ones no chosen variant uses
                if all(t.server is not server for t in measured):
                    server.stop()
            targets = measured
        log("up: " + ", ".join(f"{t.variant} {t.server.base_url}/v2/{t.repo}" for t in targets))
        samples, notes = measure(
            targets,
            endpoints,
            concurrencies,
            args.rounds,
            args.seconds,
            args.warmup,
            workdir,
            deadline,
        )
    finally:
        for server in {id(t.server): t.server for t in targets}.values():
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    rows = summarize(samples)
    meta = {
        "command": shlex.join(["python", "-m", "bench.authcost", *(argv or sys.argv[1:])]),
        "rounds": args.rounds,
        "seconds": args.seconds,
        "workers": args.workers,
        "took_s": round(time.monotonic() - started, 1),
        "load_average_1min": {"start": load_before, "end": os.getloadavg()[0]},
        "notes": notes,
    }
    if args.save is not None:
        args.save.write_text(
            json.dumps(
                {"meta": meta, "rows": rows, "samples": [asdict(s) for s in samples]}, indent=1
            )
        )
    print(table(rows))
    print(
        f"\n{meta['command']}: {args.rounds} rounds x {args.seconds} s, took {meta['took_s']} s, "
        f"load {load_before:.2f} -> {os.getloadavg()[0]:.2f}"
    )
    for note in notes:
        print(f"note: {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
