"""A hello-world ASGI app, served by ``moorage.cli.supervise`` exactly as Moorage is (same
granian options, workers, loop), for the stack's ceiling on small requests: it answers every
request with a ~0.6 KB JSON body and the headers a manifest GET carries (HEAD: no body)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_BODY = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": "sha256:" + "0" * 64,
            "size": 1234,
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": "sha256:" + f"{index}" * 64,
                "size": 4096 * (index + 1),
            }
            for index in range(3)
        ],
    },
    indent=3,
).encode()
_HEADERS = [
    (b"content-type", b"application/vnd.oci.image.manifest.v1+json"),
    (b"content-length", str(len(_BODY)).encode()),
    (b"docker-content-digest", b"sha256:" + hashlib.sha256(_BODY).hexdigest().encode()),
    (b"docker-distribution-api-version", b"registry/2.0"),
]


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":  # lifespan: nothing to set up
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    body = b"" if scope["method"] == "HEAD" else _BODY
    await send({"type": "http.response.body", "body": body})


def app() -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """The factory (``supervise`` runs its target with ``factory=True``)."""
    return hello
