"""REST API list pages at scale: 10,000 tags in one repository and 1,000 repositories, on a
real ``moorage serve`` (SQLite, open, one worker) over loopback. Reports p50/p99 per page kind.

    .venv/bin/python -m bench.api_lists [--tags 10000] [--repositories 1000] [--requests 300]

The target of issue 13: every page under 20 ms p99 on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from bench.servers import MOORAGE, _launch, free_port, moorage_command, remove_tree

MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
EMPTY_CONFIG = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"  # {}


def seed(data_dir: Path, tags: int, repositories: int) -> None:
    """Straight through the model (what pushes would leave behind, minus the bytes)."""
    from moorage.app import build
    from moorage.config import load_settings

    os.environ["MOORAGE_AUTH__ENABLED"] = "false"
    app = build(load_settings(data_dir=data_dir, log_level="warning"))
    model = app.model
    model.create_namespace("acme")
    repository = model.create_repository("acme", "big")
    assert repository is not None
    app.registry.uploads.upload_whole(repository, EMPTY_CONFIG, [b"{}"], 2)
    manifest = model.create_manifest(
        repository,
        json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": MEDIA_TYPE,
                "config": {
                    "mediaType": "application/vnd.oci.empty.v1+json",
                    "digest": EMPTY_CONFIG,
                    "size": 2,
                },
                "layers": [],
            }
        ).encode(),
        MEDIA_TYPE,
    )
    for index in range(tags):
        model.retarget_tag(repository, f"t{index:05d}", manifest)
    for index in range(repositories - 1):
        model.create_repository("acme", f"repo-{index:04d}")
    app.close()


def measure(client: httpx.Client, paths: list[str], requests: int) -> dict[str, float]:
    timings = []
    for _ in range(requests):
        path = random.choice(paths)  # noqa: S311 - picking pages, not secrets
        started = time.perf_counter()
        response = client.get(path)
        timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (path, response.status_code, response.text[:200])
    timings.sort()
    return {
        "p50_ms": round(statistics.median(timings), 2),
        "p99_ms": round(timings[int(len(timings) * 0.99) - 1], 2),
        "max_ms": round(timings[-1], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tags", type=int, default=10_000)
    parser.add_argument("--repositories", type=int, default=1_000)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="moorage-api-bench-"))
    root = workdir / MOORAGE
    data_dir = root / "data"
    data_dir.mkdir(parents=True)
    started = time.perf_counter()
    seed(data_dir, args.tags, args.repositories)
    seeded_s = time.perf_counter() - started
    port = free_port()
    argv = [*moorage_command(), "serve", "--open", "--port", str(port), "--data-dir", str(data_dir)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOORAGE_")}
    env["MOORAGE_LOG_LEVEL"] = "warning"
    server = _launch(MOORAGE, argv, root, env, port)
    try:
        pages = args.tags // 100
        repo_pages = max(args.repositories // 100, 1)
        with httpx.Client(base_url=server.base_url, timeout=30) as client:
            tokens = [""]
            for _ in range(repo_pages - 1):
                listed = client.get(f"/api/v1/repository?limit=100&next_page={tokens[-1]}").json()
                if not listed["next_page"]:
                    break
                tokens.append(listed["next_page"])
            kinds = {
                "tag list (active, 100 per page)": [
                    f"/api/v1/repository/acme/big/tag/?onlyActiveTags=true&limit=100&page={p}"
                    for p in range(1, pages + 1)
                ],
                "tag history (100 per page)": [
                    f"/api/v1/repository/acme/big/tag/?limit=100&page={p}"
                    for p in range(1, pages + 1)
                ],
                "one tag's history": [
                    f"/api/v1/repository/acme/big/tag/?specificTag=t{i:05d}"
                    for i in range(0, args.tags, 97)
                ],
                "repository list (100 per page)": [
                    f"/api/v1/repository?limit=100&next_page={token}" for token in tokens
                ],
                "repository": ["/api/v1/repository/acme/big"],
            }
            for path_list in kinds.values():  # warm up
                measure(client, path_list, 10)
            results = {kind: measure(client, paths, args.requests) for kind, paths in kinds.items()}
    finally:
        server.stop()
        remove_tree(workdir)
    print(f"seeded {args.tags} tags and {args.repositories} repositories in {seeded_s:.1f} s")
    print(f"{'page':36} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for kind, figures in results.items():
        print(f"{kind:36} {figures['p50_ms']:8} {figures['p99_ms']:8} {figures['max_ms']:8}")


if __name__ == "__main__":
    main()
