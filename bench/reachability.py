"""What ``lookup_manifest_by_digest`` (the manifest GET by digest) costs per call, in-process,
for the shapes of issue 14's reachability: a tagged image, a child of a tagged index (both
answered by the first query), a child two indexes deep and a referrer (the holders walk
after it), and an unknown digest (the first query finds no row).

    .venv/bin/python -m bench.reachability [--calls N] [--database-url URL]

SQLite in a temporary directory by default; a PostgreSQL URL (an empty database) works too.
Before/after: run it once more with ``PYTHONPATH=<older checkout>/src`` (git archive).
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from moorage.db.engine import Database, create_database_engine
from moorage.db.migrate import upgrade
from moorage.model.sql import SqlRegistryModel


def _per_call_us(call: Callable[[], object], calls: int) -> float:
    for _ in range(min(500, calls)):
        call()
    samples = []
    for _ in range(5):
        start = time.perf_counter_ns()
        for _ in range(calls):
            call()
        samples.append((time.perf_counter_ns() - start) / calls / 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    # The model tests' content builders (run from the checkout's root); imported by name so
    # that the type check of bench/ does not take in tests/.
    builders = importlib.import_module("tests.model.builders")
    push_artifact, push_image, push_index = (
        builders.push_artifact,
        builders.push_image,
        builders.push_index,
    )
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        upgrade(url)
        database = Database(create_database_engine(url))
        model = SqlRegistryModel(database, locations=("local",))
        model.create_namespace("bench")
        repo = model.create_repository("bench", "reach")
        assert repo is not None
        tagged = push_image(model, repo, [b"tagged"], seed="t").manifest
        model.retarget_tag(repo, "tagged", tagged)
        child = push_image(model, repo, [b"child"], seed="c").manifest
        deep = push_image(model, repo, [b"deep"], seed="d").manifest
        inner = push_index(model, repo, [(deep, "amd64")])
        outer = push_index(model, repo, [(child, "amd64"), (inner, "any")])
        model.retarget_tag(repo, "multi", outer)
        referrer = push_artifact(model, repo, tagged)
        shapes = {
            "tagged image": tagged.digest,
            "child of a tagged index": child.digest,
            "child two indexes deep": deep.digest,
            "referrer of a tagged image": referrer.digest,
            "unknown digest (404)": "sha256:" + "0" * 64,
        }
        print(f"{url.split(':', 1)[0]}: µs per lookup (median of 5 x {args.calls})")
        for name, digest in shapes.items():

            def lookup(digest: str = digest) -> object:
                return model.lookup_manifest_by_digest(repo, digest)

            found = lookup() is not None
            print(f"  {name:30} {_per_call_us(lookup, args.calls):8.1f}  found={found}")
        database.close()


if __name__ == "__main__":
    main()
