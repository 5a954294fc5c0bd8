"""What torrent piece hashing costs a push: the same pushes against Moorage with torrents off,
with torrents on, and (``--old-src``) an older checkout that SHA-1'd every push's pieces.

    .venv/bin/python -m bench.torrentcost [--old-src DIR] [--rounds K] [--size MiB]
        [--chunk MiB] [--workers N] [--save FILE]

Variants (ratios are against ``old`` when it runs, else against ``off``):

* ``off``: torrents.enabled false (the default): no piece is hashed while pushing;
* ``on``: torrents.enabled true: every pushed byte is SHA-1'd into 512 KiB pieces as well;
* ``old`` (with ``--old-src``): an older checkout's ``src``, which hashed pieces on every push.

Each round pushes a fresh monolithic blob and a fresh chunked one to every variant in turn
(A B C A B C ...), so whatever else the machine does touches every variant alike. Reported:
medians of MB/s and of the server's CPU milliseconds per MiB pushed (its whole process tree,
from /proc: on a busy machine the steadier of the two). Loopback only; every server is
stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from functools import partial
from pathlib import Path

if __package__ in (None, ""):  # `python bench/torrentcost.py`: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.client import new_client, push_chunked, push_monolithic
from bench.data import BlobSpec
from bench.model import timed
from bench.servers import Server, remove_tree, start_moorage, tree_cpu_s

MIB = 1024 * 1024
REPO = "bench/torrents"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.torrentcost", description=__doc__)
    parser.add_argument("--old-src", type=Path, default=None, help="an older checkout's src")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size", type=int, default=64, help="MiB per pushed blob")
    parser.add_argument("--chunk", type=int, default=8, help="MiB per PATCH of the chunked push")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--save", type=Path, default=None, help="also write the JSON here")
    return parser.parse_args(argv)


def _rate(size: int, seconds: float) -> float:
    return size / 1e6 / seconds


def _servers(workdir: Path, args: argparse.Namespace) -> dict[str, Server]:
    servers = {
        "off": start_moorage(workdir, args.workers, name="off"),
        "on": start_moorage(
            workdir, args.workers, name="on", settings={"MOORAGE_TORRENTS__ENABLED": "true"}
        ),
    }
    if args.old_src is not None:
        servers["old"] = start_moorage(
            workdir, args.workers, name="old", pythonpath=str(args.old_src)
        )
    return servers


def _cpu_ms_per_mib(server: Server, size: int, action: partial[None]) -> tuple[float, float]:
    """(MB/s, server CPU ms per MiB) of one push."""
    before = tree_cpu_s(server.process.pid)
    seconds = timed(action)
    cpu_s = tree_cpu_s(server.process.pid) - before
    return _rate(size, seconds), 1000 * cpu_s / (size / MIB)


def run(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    size, chunk = args.size * MIB, args.chunk * MIB
    rates: dict[str, dict[str, list[float]]] = {}
    workdir = Path(tempfile.mkdtemp(prefix="bench-torrents-"))
    servers = _servers(workdir, args)
    try:
        for round_ in range(args.rounds):
            for name, server in servers.items():
                mono = BlobSpec(f"torrent-mono-{name}-{round_}", size)
                chunked = BlobSpec(f"torrent-chunked-{name}-{round_}", size)
                _ = mono.digest, chunked.digest  # hashed before any timing
                with new_client(server.base_url) as client:
                    push = partial(
                        push_monolithic, client, REPO, mono.chunks(), mono.size, mono.digest
                    )
                    whole = _cpu_ms_per_mib(server, size, push)
                    pushed = _cpu_ms_per_mib(
                        server, size, partial(push_chunked, client, REPO, chunked, chunk)
                    )
                per = rates.setdefault(name, {})
                for kind, (rate, cpu) in (("monolithic", whole), ("chunked", pushed)):
                    per.setdefault(f"{kind} MB/s", []).append(rate)
                    per.setdefault(f"{kind} cpu ms/MiB", []).append(cpu)
            print(f"[torrentcost] round {round_ + 1}/{args.rounds} done", file=sys.stderr)
    finally:
        for server in servers.values():
            server.stop()
        remove_tree(workdir)
    return {
        name: {kind: statistics.median(values) for kind, values in per.items()}
        for name, per in rates.items()
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    medians = run(args)
    base = "old" if "old" in medians else "off"
    print(f"push {args.size} MiB, medians over {args.rounds} rounds (ratio to {base})")
    for name, per in medians.items():
        cells = [
            f"{kind} {value:6.1f} ({value / medians[base][kind]:.2f}x)"
            for kind, value in per.items()
        ]
        print(f"  {name:4}  " + "  ".join(cells))
    if args.save is not None:
        settings = {key: str(value) for key, value in vars(args).items()}
        args.save.write_text(json.dumps({"args": settings, "medians": medians}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
