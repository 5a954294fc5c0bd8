"""Manifest PUT bodies a real ``moorage serve`` cannot read (malformed chunked encoding, a
body cut short) answer 400 or drop the connection, never 5xx, and store nothing (issue 11)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support.cli import running_server
from support.pgserver import free_port
from support.slow_clients import RawRequest, RawResponse

pytestmark = pytest.mark.slow

NAME = "acme/app"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CHUNKED = {"Content-Type": OCI_MANIFEST, "Transfer-Encoding": "chunked"}

# Each: extra headers, then the bytes after the header block; the connection is then
# half-closed, so a server waiting for more sees the client go away.
CASES = {
    "size not hex": (CHUNKED, b"zz\r\nabc\r\n0\r\n\r\n"),
    "size past 64 bits": (CHUNKED, b"ffffffffffffffffffffff\r\nabc\r\n0\r\n\r\n"),
    "size of 5000 digits": (CHUNKED, b"1" * 5000 + b"\r\nabc\r\n0\r\n\r\n"),
    "chunk without CRLF": (CHUNKED, b"3\r\nabcXX0\r\n\r\n"),
    "chunk shorter than its size": (CHUNKED, b"10\r\nabc"),
    "no last chunk": (CHUNKED, b"3\r\nabc\r\n"),
    "control bytes in an extension": (CHUNKED, b"3;\x01\x02=\r\nabc\r\n0\r\n\r\n"),
    "chunked and Content-Length": (
        {**CHUNKED, "Content-Length": "3"},
        b"3\r\nabc\r\n0\r\n\r\n",
    ),
    "gzip then chunked": (
        {"Content-Type": OCI_MANIFEST, "Transfer-Encoding": "gzip, chunked"},
        b"3\r\nabc\r\n0\r\n\r\n",
    ),
    "Content-Length not a number": ({"Content-Type": OCI_MANIFEST, "Content-Length": "1x"}, b"{}"),
    "Content-Length of 5000 digits": (
        {"Content-Type": OCI_MANIFEST, "Content-Length": "9" * 5000},
        b"{}",
    ),
    "Content-Length longer than the body": (
        {"Content-Type": OCI_MANIFEST, "Content-Length": "100"},
        b'{"schemaVersion": 2}',
    ),
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = tmp_path_factory.mktemp("serve") / "data"
    with running_server("--data-dir", str(data), port=free_port()) as base:
        yield base


def _host(base: str) -> str:
    return base.removeprefix("http://")


@pytest.mark.parametrize("case", list(CASES))
def test_unreadable_manifest_body_is_400_or_a_drop(server: str, case: str, tmp_path: Path) -> None:
    headers, tail = CASES[case]
    request = RawRequest(_host(server), "PUT", f"/v2/{NAME}/manifests/{case.split()[0]}", headers)
    try:
        try:
            request.send(tail)
            request.sock.shutdown(socket.SHUT_WR)  # nothing more is coming
            response: RawResponse | None = request.response()
        except OSError:  # incl. ConnectionError: the server may refuse the headers and go
            response = None  # dropped: as good as a 400 for a body that cannot be read
    finally:
        request.close()
    if response is not None:
        assert 400 <= response.status < 500, (case, response.status, response.body[:200])
        if response.body:
            assert json.loads(response.body)["errors"][0]["code"] == "MANIFEST_INVALID"
    # The server is fine and stored nothing.
    assert httpx.get(f"{server}/v2/").status_code == 200
    tags = httpx.get(f"{server}/v2/{NAME}/tags/list")
    assert tags.status_code == 404 or tags.json()["tags"] in ([], None)
