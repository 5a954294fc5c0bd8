"""Throughput of :class:`ResumableHasher` against :mod:`hashlib`.

Run ``python -m moorage.hashing.bench [--size-mib 256] [--repeat 3] [sha256 sha512 sha1]``.
Each run hashes ``size`` MiB in 1 MiB ``update`` calls; the "resumed" variant also does
``export_state()`` + ``from_state()`` after every 8 MiB, as a chunked upload would between PATCH
requests. Best of ``repeat`` runs is reported. Not a test: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import time
from collections.abc import Callable

from moorage.hashing import SUPPORTED_ALGORITHMS, ResumableHasher, backend_description

MIB = 1 << 20
EXPORT_EVERY = 8 * MIB


def _best(run: Callable[[], str], repeat: int) -> tuple[float, str]:
    best, result = float("inf"), ""
    for _ in range(repeat):
        start = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - start)
    return best, result


def bench(algorithm: str, size_mib: int, repeat: int) -> list[str]:
    chunk = os.urandom(MIB)
    view = memoryview(bytearray(chunk))

    def with_hashlib() -> str:
        h = hashlib.new(algorithm)
        for _ in range(size_mib):
            h.update(chunk)
        return h.hexdigest()

    def resumable(data: bytes | memoryview, export: bool) -> Callable[[], str]:
        def run() -> str:
            h = ResumableHasher.new(algorithm)
            for i in range(1, size_mib + 1):
                h.update(data)
                if export and (i * MIB) % EXPORT_EVERY == 0:
                    h = ResumableHasher.from_state(h.export_state())
            return h.hexdigest()

        return run

    base, expected = _best(with_hashlib, repeat)
    rows = [f"{algorithm}: hashlib {size_mib / base:8.1f} MB/s"]
    variants = (
        ("bytes", resumable(chunk, False)),
        ("memoryview", resumable(view, False)),
        ("bytes + export/resume every 8 MiB", resumable(chunk, True)),
    )
    for label, run in variants:
        seconds, got = _best(run, repeat)
        if got != expected:
            raise AssertionError(f"{algorithm} {label}: digest mismatch")
        rows.append(
            f"{algorithm}: ResumableHasher ({label}) {size_mib / seconds:8.1f} MB/s"
            f"  ratio vs hashlib {base / seconds:5.3f}"
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("algorithms", nargs="*", default=list(SUPPORTED_ALGORITHMS))
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    print(f"backend: {backend_description()}; {args.size_mib} MiB in 1 MiB updates (MB = MiB)")
    for algorithm in args.algorithms:
        for row in bench(algorithm, args.size_mib, args.repeat):
            print(row, flush=True)


if __name__ == "__main__":
    main()
