"""What the run ran on: CPUs, memory, disk, and the versions of both registries."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

from bench.servers import REFERENCE_BIN, moorage_command


def _run(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unavailable ({exc})"
    return (done.stdout or done.stderr).strip()


def _mem_total() -> str:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return "?"


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def _moorage_version() -> str:
    code = "import importlib.metadata as m; print(m.version('moorage'))"
    command = moorage_command()
    python = Path(command[0]).parent / "python" if len(command) == 1 else Path(command[0])
    return _run([str(python), "-c", code])


def describe(workdir: Path) -> dict[str, str]:
    df = _run(["df", "-h", "--output=source,fstype,size,avail", str(workdir)]).splitlines()
    wrk = _run(["wrk", "--version"]).splitlines()
    return {
        "nproc": str(os.cpu_count()),
        "cpu": _cpu_model(),
        "memory": _mem_total(),
        "kernel": platform.release(),
        "disk (bench temp dir)": df[-1] if df else "?",
        "python": platform.python_version(),
        "moorage": _moorage_version(),
        "docker-registry": _run([REFERENCE_BIN, "--version"]),
        "wrk": wrk[0] if wrk else "missing",
    }
