"""Moorage against the reference registry (CNCF Distribution), same workloads, one run.

    .venv/bin/python -m bench.run [--quick] [--json] [--runs K] [--only NAMES]
        [--moorage-workers N] [--max-minutes M] [--save FILE] [--tmp-dir DIR] [--keep]

Prints a table (workload | unit | reference | moorage | ratio | target | verdict), or JSON.
Loopback only; nothing is installed: missing tools are named with the command to get them.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):  # `python bench/run.py`: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import access, blobs, ceiling, ceilings, disk, images, load, machine, report, variants
from bench.model import Measure, Plan, size_label
from bench.servers import (
    BEFORE,
    REFERENCE_BIN,
    Server,
    moorage_command,
    start_moorage,
    start_reference,
)

WORKLOADS = ("disk", "ceiling", "push", "chunked", "concurrent", "pull", "image", "latency")
BUSY_LOAD = 0.7  # 1-min load average above which the run says its figures are noisy
Workload = Callable[[list[Server], Plan, int], list[Measure]]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    parser.add_argument("--quick", action="store_true", help="small sizes: a ~1 min smoke test")
    parser.add_argument("--runs", type=int, default=1, help="repeat K times, report medians")
    parser.add_argument(
        "--moorage-workers",
        type=int,
        default=os.cpu_count() or 1,
        help="moorage serve --workers (default: one per core, as the reference uses every core)",
    )
    parser.add_argument(
        "--only",
        default=",".join(WORKLOADS),
        help=f"comma-separated subset of: {','.join(WORKLOADS)}",
    )
    parser.add_argument(
        "--max-minutes",
        type=float,
        default=30.0,
        help="skip the remaining workloads once this much time has passed",
    )
    parser.add_argument(
        "--tmp-dir",
        type=Path,
        default=None,
        help="where the temporary folders go (default: the system temp dir)",
    )
    parser.add_argument(
        "--reference-bin",
        default=REFERENCE_BIN,
        help=f"the Distribution binary to compare with (default {REFERENCE_BIN})",
    )
    parser.add_argument(
        "--before-src",
        type=Path,
        default=None,
        help="another checkout's src/ (e.g. a git worktree of the commit before a change): "
        "it serves too, with the same settings, and the image workload runs on it as well",
    )
    parser.add_argument("--save", type=Path, default=None, help="also write the JSON to this file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(WORKLOADS))
    if unknown or not chosen:
        parser.error(f"--only: unknown {unknown}; choose from {','.join(WORKLOADS)}")
    if args.runs < 1 or args.moorage_workers < 1:
        parser.error("--runs and --moorage-workers must be at least 1")
    args.only = chosen
    if args.before_src is not None and not (args.before_src / "moorage").is_dir():
        parser.error(f"--before-src: no moorage package in {args.before_src}")
    return args


def preflight(wanted: list[str], reference_bin: str) -> tuple[list[str], list[str]]:
    """Fatal problems and notes (workloads skipped for a missing optional tool)."""
    fatal, notes = [], []
    if not Path(reference_bin).exists():
        fatal.append(f"{reference_bin} not found: apt-get install -y docker-registry")
    if "ceiling" in wanted and (missing := ceilings.missing_tools()):
        notes.append("loopback GET ceiling skipped: " + "; ".join(missing))
    command = moorage_command()
    if not Path(command[0]).exists():
        fatal.append("moorage not installed in this environment: make setup")
    if "latency" in wanted and (missing := load.missing_tools()):
        notes.append("latency workloads skipped: " + "; ".join(missing))
        wanted.remove("latency")
    return fatal, notes


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _disk_share(measures: list[Measure], largest: int) -> list[Measure]:
    disk_rate = next((m.value for m in measures if m.key == "disk"), None)
    key = f"push-mono-{size_label(largest)}"
    pushes = [m for m in measures if m.key == key]
    if not disk_rate or not pushes:
        return []
    label = f"push monolithic {size_label(largest)} as % of durable disk write"
    return [Measure("disk-share", label, "%", m.server, 100 * m.value / disk_rate) for m in pushes]


def one_run(
    servers: list[Server],
    plan: Plan,
    run: int,
    wanted: list[str],
    workdir: Path,
    deadline: float,
    notes: list[str],
    small: list[variants.SmallRequests],
    workers: int,
    reference_bin: str,
    before: Server | None,
) -> list[Measure]:
    """One pass over the workloads; ``before`` (the older checkout) takes the image pushes
    and the small requests."""
    simple: dict[str, Workload] = {
        "push": blobs.push_mono,
        "chunked": blobs.push_chunk,
        "concurrent": blobs.push_concurrent,
        "pull": blobs.pull,
        "image": images.push_images,
    }
    measures: list[Measure] = []
    for name in WORKLOADS:
        if name not in wanted:
            continue
        if time.monotonic() > deadline:
            notes.append(f"run {run + 1}: '{name}' skipped, --max-minutes reached")
            continue
        log(f"run {run + 1}: {name}")
        for server in [*servers, *([before] if before else [])]:
            server.take_phase_peak_kib()
        if name == "disk":
            got = disk.durable_write(workdir, plan.disk_bytes)
        elif name == "ceiling":
            got = ceiling.client_ceiling(plan.chunked_size)
            got += ceilings.measure(workdir, plan, workers, "latency" in wanted)
        elif name == "latency":
            if not small:  # one small image, the same bytes everywhere, tagged latest
                asked = [*servers, *([before] if before else [])]
                small.append(variants.prepare(asked, workdir, reference_bin))
            got = load.latency(small[0].variants, plan, small[0].seeded, workdir)
        elif name == "image" and before is not None:  # (pushes of blobs alone: unchanged)
            got = simple[name]([*servers, before], plan, run)
        else:
            got = simple[name](servers, plan, run)
        measures += got
        if name not in ("disk", "ceiling"):
            measures += [
                Measure(
                    f"rss-{name}",
                    f"peak RSS during {name}",
                    "MB",
                    s.name,
                    s.take_phase_peak_kib() * 1024 / 1e6,
                    False,
                )
                for s in [*servers, *([before] if before and name in ("image", "latency") else [])]
            ]
    return measures + _disk_share(measures, max(plan.mono_sizes))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    plan = Plan.quick() if args.quick else Plan.full()
    wanted = list(args.only)
    fatal, notes = preflight(wanted, args.reference_bin)
    if fatal:
        for problem in fatal:
            print(f"missing: {problem}", file=sys.stderr)
        return 2
    for note in notes:
        log(note)
    load_before = os.getloadavg()[0]
    if load_before > BUSY_LOAD:
        notes.append(
            f"machine busy at start (1-min load average {load_before:.2f} on "
            f"{os.cpu_count()} CPUs): expect noisy figures"
        )
    started = time.monotonic()
    deadline = started + args.max_minutes * 60
    workdir = Path(tempfile.mkdtemp(prefix="moorage-bench-", dir=args.tmp_dir))
    servers: list[Server] = []
    before: Server | None = None
    measures: list[Measure] = []
    small: list[variants.SmallRequests] = []
    try:
        owner_password = secrets.token_urlsafe(18)
        servers = [
            start_reference(workdir, args.reference_bin),
            start_moorage(  # auth on, as Moorage runs by default; the owner pushes
                workdir, args.moorage_workers, settings=access.owner_settings(owner_password)
            ),
        ]
        servers[1].authorization = access.basic(access.OWNER, owner_password)
        if args.before_src is not None:
            before = start_moorage(
                workdir,
                args.moorage_workers,
                name=BEFORE,
                settings=access.owner_settings(owner_password),
                pythonpath=str(args.before_src.resolve()),
            )
            before.authorization = servers[1].authorization
        log(f"servers up in {workdir}: " + ", ".join(f"{s.name} {s.base_url}" for s in servers))
        about = machine.describe(workdir)
        for run in range(args.runs):
            measures += one_run(
                servers,
                plan,
                run,
                wanted,
                workdir,
                deadline,
                notes,
                small,
                args.moorage_workers,
                args.reference_bin,
                before,
            )
        for s in [*servers, *([before] if before else [])]:
            measures += [
                Measure(
                    "rss-peak",
                    "peak RSS, whole run (tree sum, sampled 10 Hz)",
                    "MB",
                    s.name,
                    s.peak_rss_kib * 1024 / 1e6,
                    False,
                ),
                Measure(
                    "pss-peak",
                    "peak PSS, whole run (tree sum, shared pages once)",
                    "MB",
                    s.name,
                    s.peak_pss_kib * 1024 / 1e6,
                    False,
                ),
                Measure(
                    "rss-hwm",
                    "VmHWM at end (sum over live tree)",
                    "MB",
                    s.name,
                    s.hwm_kib() * 1024 / 1e6,
                    False,
                ),
            ]
    except Exception as exc:
        for s in [*servers, *([before] if before else [])]:
            log(f"{s.name} log tail:\n{s.log_tail()}")
        log(f"failed: {exc}")
        raise
    finally:
        extra = [*([before] if before else []), *(each.reference_with_tokens for each in small)]
        for s in [*servers, *extra]:
            s.stop()
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    rows, machine_figures = report.collect(measures)
    meta = {
        "command": shlex.join(
            [Path(sys.executable).name, "-m", "bench.run", *(argv or sys.argv[1:])]
        ),
        "mode": "quick" if args.quick else "full",
        "runs": args.runs,
        "moorage_workers": args.moorage_workers,
        "seconds": round(time.monotonic() - started, 1),
        "load_average_1min": {"start": load_before, "end": os.getloadavg()[0]},
        "machine": about,
        "notes": notes,
    }
    if args.save is not None:
        args.save.write_text(report.as_json(rows, machine_figures, meta) + "\n")
    if args.json:
        print(report.as_json(rows, machine_figures, meta))
    else:
        for key, value in about.items():
            print(f"{key}: {value}")
        print(
            f"mode: {meta['mode']}, runs: {args.runs} (median), moorage workers: "
            f"{args.moorage_workers}, took {meta['seconds']} s"
        )
        print(report.table(rows, machine_figures))
        for note in notes:
            print(f"note: {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
