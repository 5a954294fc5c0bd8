"""A tiny command line over oras-py (PyPI ``oras``: a Python SDK with no CLI of its own).

The end-to-end tests run it as a child process (``support.e2e_clients.oras``) so that every call
is bounded by a hard timeout, like the other clients. It prints one JSON object on its last line.

    e2e_oras_driver.py push HOST/REPO:TAG FILE[:MEDIATYPE]... [--config PATH:MEDIATYPE]
        [--annotation K=V]... [--subject DIGEST,SIZE,MEDIATYPE] [--chunked]
    e2e_oras_driver.py pull HOST/REPO:TAG OUTDIR
    e2e_oras_driver.py manifest HOST/REPO:REF
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import types
from typing import Any

import oras.client  # type: ignore[import-untyped]
import oras.decorator  # type: ignore[import-untyped]
import oras.oci  # type: ignore[import-untyped]

# oras-py retries failed requests with sleeps of 3 + 3**n seconds (up to ~2 minutes in all);
# keep its retries but not the waiting, so a broken server fails fast.
oras.decorator.time = types.SimpleNamespace(sleep=lambda seconds: time.sleep(min(seconds, 0.2)))


def _client(target: str, *, pushing: bool = False) -> oras.client.OrasClient:
    """With ``ORAS_E2E_USERNAME`` set, pulls take the token flow. oras-py keeps its first
    token for every later scope: a push whose HEAD got a pull token retries the POST with it
    and gives up at the second 401. So pushes send Basic credentials on every request, the
    other way oras-py offers (the registry accepts Basic on /v2/ as well)."""
    username = os.environ.get("ORAS_E2E_USERNAME")
    backend = "basic" if username and pushing else "token"
    client = oras.client.OrasClient(
        hostname=target.split("/", 1)[0], insecure=True, auth_backend=backend
    )
    if username:
        client.auth.set_basic_auth(username, os.environ["ORAS_E2E_PASSWORD"])
    return client


def push(args: argparse.Namespace) -> dict[str, Any]:
    client = _client(args.target, pushing=True)
    subject = None
    if args.subject:
        digest, size, media_type = args.subject.split(",", 2)
        subject = oras.oci.Subject(mediaType=media_type, digest=digest, size=int(size))
    annotations = dict(item.split("=", 1) for item in args.annotation)
    response = client.push(
        target=args.target,
        files=args.files,
        manifest_config=args.config,
        manifest_annotations=annotations or None,
        subject=subject,  # annotated str upstream, but used as an oras.oci.Subject
        disable_path_validation=True,
        do_chunked=args.chunked,
        quiet=True,
    )
    return {
        "status": response.status_code,
        "digest": response.headers.get("Docker-Content-Digest"),
        "location": response.headers.get("Location"),
        "oci_subject": response.headers.get("OCI-Subject"),
    }


def pull(args: argparse.Namespace) -> dict[str, Any]:
    files = _client(args.target).pull(target=args.target, outdir=args.outdir)
    return {"files": files}


def manifest(args: argparse.Namespace) -> dict[str, Any]:
    return {"manifest": _client(args.target).get_manifest(args.target)}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="e2e_oras_driver")
    commands = parser.add_subparsers(dest="command", required=True)
    p_push = commands.add_parser("push")
    p_push.add_argument("target")
    p_push.add_argument("files", nargs="*")
    p_push.add_argument("--config")
    p_push.add_argument("--annotation", action="append", default=[])
    p_push.add_argument("--subject")
    p_push.add_argument("--chunked", action="store_true")
    p_push.set_defaults(handler=push)
    p_pull = commands.add_parser("pull")
    p_pull.add_argument("target")
    p_pull.add_argument("outdir")
    p_pull.set_defaults(handler=pull)
    p_manifest = commands.add_parser("manifest")
    p_manifest.add_argument("target")
    p_manifest.set_defaults(handler=manifest)
    args = parser.parse_args(argv)
    result = args.handler(args)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
