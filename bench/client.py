"""The few OCI Distribution calls the workloads make, with httpx (sync)."""

from __future__ import annotations

import hashlib
import http.client
from collections.abc import Callable, Iterable
from urllib.parse import urljoin

import httpx

from bench.data import MIB, BlobSpec

MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
ACCEPT = f"{MEDIA_MANIFEST}, application/vnd.docker.distribution.manifest.v2+json"
TIMEOUT = httpx.Timeout(connect=5.0, read=300.0, write=300.0, pool=300.0)


class BenchError(RuntimeError):
    """A registry answered something a workload did not expect."""


def new_client(base_url: str, authorization: str | None = None) -> httpx.Client:
    """One keep-alive connection pool per worker thread, never following redirects;
    ``authorization`` is sent with every request (and by the pulls' own connection)."""
    headers = {"Authorization": authorization} if authorization else {}
    return httpx.Client(base_url=base_url, timeout=TIMEOUT, follow_redirects=False, headers=headers)


def _expect(response: httpx.Response, *codes: int) -> httpx.Response:
    if response.status_code not in codes:
        response.read()
        raise BenchError(
            f"{response.request.method} {response.request.url.path} -> "
            f"{response.status_code}: {response.text[:300]}"
        )
    return response


def _with_digest(location: str, digest: str) -> str:
    return location + ("&" if "?" in location else "?") + "digest=" + digest


def start_upload(client: httpx.Client, repo: str) -> str:
    """POST a new upload session; its absolute-or-relative Location, resolved."""
    response = _expect(client.post(f"/v2/{repo}/blobs/uploads/"), 202)
    return urljoin(str(client.base_url), response.headers["location"])


def push_monolithic(
    client: httpx.Client, repo: str, body: Iterable[bytes] | bytes, size: int, digest: str
) -> None:
    """POST, then one PUT ?digest= with the whole body (streamed when an iterable)."""
    location = start_upload(client, repo)
    headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
    response = client.put(_with_digest(location, digest), content=body, headers=headers)
    _expect(response, 201)


def push_chunked(client: httpx.Client, repo: str, blob: BlobSpec, chunk: int) -> None:
    """POST, PATCHes of ``chunk`` bytes with Content-Range, then PUT ?digest= (no body)."""
    location = start_upload(client, repo)
    for start in range(0, blob.size, chunk):
        body = blob.range_chunks(start, chunk)
        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Range": f"{start}-{start + len(body) - 1}",
            "Content-Length": str(len(body)),
        }
        response = _expect(client.patch(location, content=body, headers=headers), 202)
        location = urljoin(location, response.headers["location"])
    _expect(client.put(_with_digest(location, blob.digest), content=b""), 201)


def blob_exists(client: httpx.Client, repo: str, digest: str) -> bool:
    return _expect(client.head(f"/v2/{repo}/blobs/{digest}"), 200, 404).status_code == 200


def _pull(client: httpx.Client, repo: str, digest: str, piece: Callable[[memoryview], None]) -> int:
    """GET a blob read straight into a 4 MiB buffer with ``http.client`` (httpx reads 64 KiB
    at a time through h11 and tops out near 0.7 GB/s here: it would measure the client),
    handing each piece to ``piece``; the byte count. Redirects are not followed."""
    url = client.base_url
    connection = http.client.HTTPConnection(url.host, url.port, timeout=300)
    buffer = bytearray(4 * MIB)
    view = memoryview(buffer)
    received = 0
    try:
        auth = client.headers.get("authorization")
        headers = {"Authorization": auth} if auth else {}
        connection.request("GET", f"/v2/{repo}/blobs/{digest}", headers=headers)
        response = connection.getresponse()
        if response.status != 200:
            raise BenchError(f"GET blob {digest} -> {response.status}: {response.read(300)!r}")
        while count := response.readinto(buffer):
            received += count
            piece(view[:count])
    finally:
        connection.close()
    return received


def pull_sized(client: httpx.Client, repo: str, digest: str, size: int) -> None:
    """The timed pull: every byte received, the count checked (hashing here would measure
    the client's SHA-256, not the registry; ``verify_pull`` checks the content untimed)."""
    received = _pull(client, repo, digest, lambda _piece: None)
    if received != size:
        raise BenchError(f"pulled {received} bytes of {digest}, expected {size}")


def verify_pull(client: httpx.Client, repo: str, digest: str, size: int) -> None:
    """An untimed pull of the same blob, SHA-256 checked: a server that sent wrong bytes
    fails the bench."""
    hasher = hashlib.sha256()
    received = _pull(client, repo, digest, hasher.update)
    if received != size or "sha256:" + hasher.hexdigest() != digest:
        raise BenchError(f"pulled {received} bytes of {digest}: size or digest mismatch")
