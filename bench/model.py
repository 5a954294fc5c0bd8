"""What the workloads measure, and the plan (sizes, counts, durations) of a run."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bench.data import GIB, MIB


@dataclass(frozen=True)
class Measure:
    """One figure for one server (or for the machine, ``server == "machine"``)."""

    key: str
    label: str
    unit: str
    server: str
    value: float
    higher_is_better: bool = True


@dataclass(frozen=True)
class Plan:
    """Sizes, counts and durations; ``full()`` is the documented run, ``quick()`` a smoke test."""

    mono_sizes: tuple[int, ...]
    chunked_size: int
    chunk: int
    concurrent: int
    concurrent_size: int
    layers: int
    images_sequential: int
    images_parallel: int
    images_per_parallel_client: int
    latency_seconds: int
    warmup_seconds: int  # untimed load at the same concurrency before each timed point
    concurrencies: tuple[int, ...]
    disk_bytes: int
    repeat_budget: int  # small blobs are pushed/pulled several times: budget // size, 1..5

    @staticmethod
    def full() -> Plan:
        return Plan(
            mono_sizes=(16 * MIB, 256 * MIB, GIB),
            chunked_size=256 * MIB,
            chunk=8 * MIB,
            concurrent=8,
            concurrent_size=64 * MIB,
            layers=50,
            images_sequential=6,
            images_parallel=3,
            images_per_parallel_client=3,
            latency_seconds=8,
            warmup_seconds=2,
            concurrencies=(1, 16, 64),
            disk_bytes=GIB,
            repeat_budget=512 * MIB,
        )

    @staticmethod
    def quick() -> Plan:
        return Plan(
            mono_sizes=(16 * MIB, 64 * MIB),
            chunked_size=64 * MIB,
            chunk=8 * MIB,
            concurrent=8,
            concurrent_size=8 * MIB,
            layers=50,
            images_sequential=2,
            images_parallel=3,
            images_per_parallel_client=1,
            latency_seconds=2,
            warmup_seconds=1,
            concurrencies=(1, 16, 64),
            disk_bytes=256 * MIB,
            repeat_budget=64 * MIB,
        )

    def repeats(self, size: int) -> int:
        return max(1, min(5, self.repeat_budget // size))


def size_label(size: int) -> str:
    return f"{size // GIB} GiB" if size >= GIB and size % GIB == 0 else f"{size // MIB} MiB"


def timed(action: Callable[[], None]) -> float:
    """Seconds ``action`` takes, after flushing dirty pages so earlier writes do not leak in."""
    os.sync()
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def in_threads(actions: Sequence[Callable[[], None]]) -> None:
    """Run the actions in one thread each, wait for all, re-raise the first failure."""
    errors: list[BaseException] = []

    def guard(action: Callable[[], None]) -> None:
        try:
            action()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=guard, args=(a,)) for a in actions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
