"""The machine's ceilings, measured in the same run as the registries: the loopback GET
ceiling (Debian's nginx with sendfile serving a local file of each pulled size, read by the
bench's own pull client), a hello-world ASGI app on Moorage's server stack (the same
supervisor and granian options, another app target) under the same wrk/hey commands as the
small-request rows, and SHA-256 on one core. The durable disk rate is ``bench.disk``."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import httpx

from bench import load
from bench.client import new_client, pull_sized
from bench.data import MIB, BlobSpec
from bench.model import Measure, Plan, size_label, timed
from bench.servers import Server, _launch, free_port

MACHINE = "machine"
NGINX_BIN = "/usr/sbin/nginx"
SUPERVISOR_ENV = "MOORAGE_SUPERVISOR"  # read by moorage.cli.supervise
HELLO_APP = "bench.hello:app"
CEILING_REPO = "ceiling"

_NGINX_CONFIG = """\
{user}
worker_processes {workers};
pid {root}/nginx.pid;
error_log {root}/error.log warn;
daemon off;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    client_body_temp_path {root}/tmp/body;
    proxy_temp_path {root}/tmp/proxy;
    fastcgi_temp_path {root}/tmp/fastcgi;
    uwsgi_temp_path {root}/tmp/uwsgi;
    scgi_temp_path {root}/tmp/scgi;
    types {{ }}
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        root {root}/www;
    }}
}}
"""


def missing_tools() -> list[str]:
    return (
        []
        if Path(NGINX_BIN).exists()
        else [f"{NGINX_BIN} not found: apt-get install -y nginx-light"]
    )


def sha256_rate(total: int = 512 * MIB) -> list[Measure]:
    """hashlib SHA-256 over 4 MiB buffers, one thread: what a hashing push can reach per core."""
    buffer = next(BlobSpec("sha-probe", 4 * MIB).chunks())
    hasher = hashlib.sha256()
    start = time.perf_counter()
    for _ in range(total // len(buffer)):
        hasher.update(buffer)
    rate = total / 1e6 / (time.perf_counter() - start)
    return [Measure("sha256", "SHA-256, one core, 4 MiB buffers", "MB/s", MACHINE, rate)]


def _blob_name(size: int) -> str:
    return f"size-{size}"


def loopback_pull(workdir: Path, sizes: tuple[int, ...], repeats: dict[int, int]) -> list[Measure]:
    """nginx (sendfile, access log off) serving one file per size; the median pull rate."""
    root = workdir / "nginx"
    blobs = root / "www" / "v2" / CEILING_REPO / "blobs"
    blobs.mkdir(parents=True)
    (root / "tmp").mkdir()
    for size in sizes:
        with (blobs / _blob_name(size)).open("wb") as handle:
            for piece in BlobSpec(f"nginx-{size}", size).chunks():
                handle.write(piece)
    port = free_port()
    config = root / "nginx.conf"
    config.write_text(
        _NGINX_CONFIG.format(
            user="user root;" if os.geteuid() == 0 else "",
            workers=os.cpu_count() or 1,
            root=root,
            port=port,
        )
    )
    log = (root / "nginx.out").open("wb")
    process = subprocess.Popen(
        [NGINX_BIN, "-c", str(config), "-p", str(root)],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    out: list[Measure] = []
    try:
        _wait_http(base + f"/v2/{CEILING_REPO}/blobs/{_blob_name(sizes[0])}", process)
        with new_client(base) as client:
            for size in sizes:
                one = partial(pull_sized, client, CEILING_REPO, _blob_name(size), size)
                rates = sorted(size / 1e6 / timed(one) for _ in range(repeats[size]))
                label = f"loopback GET ceiling (nginx sendfile), {size_label(size)}"
                key = f"nginx-pull-{size_label(size)}"
                out.append(Measure(key, label, "MB/s", MACHINE, rates[len(rates) // 2]))
    finally:
        _stop(process)
        log.close()
        shutil.rmtree(root, ignore_errors=True)
    return out


def _wait_http(url: str, process: subprocess.Popen[bytes], timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the server exited at start ({process.returncode})")
        try:
            httpx.head(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError(f"{url}: not answering after {timeout_s:.0f} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


def start_hello(workdir: Path, workers: int) -> Server:
    """The hello-world on Moorage's own supervisor (``moorage.cli.supervise``): same granian
    options, loop, worker count and forks, only the application differs."""
    root = workdir / "hello"
    root.mkdir(parents=True)
    port = free_port()
    spec = {"host": "127.0.0.1", "port": port, "workers": workers, "log_level": "warning"}
    spec["app"] = HELLO_APP
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOORAGE_")}
    env[SUPERVISOR_ENV] = json.dumps(spec)
    here = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH", "")) if p)
    argv = [sys.executable, "-m", "moorage.cli.supervise"]
    return _launch("hello", argv, root, env, port)


def hello_load(workdir: Path, plan: Plan, workers: int) -> list[Measure]:
    """GET with the same wrk command as the manifest/tags rows, HEAD with the same hey."""
    server = start_hello(workdir, workers)
    out = []
    try:
        script = load.wrk_script(workdir, "GET")
        for method in ("GET", "HEAD"):
            for connections in plan.concurrencies:
                url = server.base_url + "/v2/hello/manifests/latest"
                for seconds in (plan.warmup_seconds, plan.latency_seconds):
                    if method == "HEAD":
                        result = load.run_hey_head(url, connections, seconds)
                    else:
                        result = load.run_wrk(url, script, connections, seconds, None)
                key = f"hello-{method.lower()}-c{connections}"
                label = f"hello-world ASGI on granian, {method}, c{connections}"
                out += [
                    Measure(key, label, "req/s", MACHINE, result.rps),
                    Measure(key + "-p50", label + " p50", "ms", MACHINE, result.p50_ms, False),
                    Measure(key + "-p99", label + " p99", "ms", MACHINE, result.p99_ms, False),
                ]
    finally:
        server.stop()
    return out


def measure(workdir: Path, plan: Plan, workers: int, with_load: bool) -> list[Measure]:
    """Every ceiling but the disk's (its own workload): nginx pulls, SHA-256, hello-world."""
    out = sha256_rate()
    if not missing_tools():
        repeats = {size: plan.repeats(size) for size in plan.mono_sizes}
        out += loopback_pull(workdir, plan.mono_sizes, repeats)
    if with_load:
        out += hello_load(workdir, plan, workers)
    return out
