"""HTTP/1.1 requests written by hand on a socket: headers now, body later, in pieces, or never.

What well-behaved clients cannot do and hostile ones do: hold a request open, send part of a
body and vanish, send a malformed chunked encoding. ``RawRequest`` sends the request line and
headers on creation; the test then decides what, if anything, follows.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes


class RawRequest:
    def __init__(
        self,
        host: str,
        method: str,
        path: str,
        headers: Mapping[str, str] | None = None,
        *,
        timeout: float = 30,
    ) -> None:
        address, port = host.rsplit(":", 1)
        self.sock = socket.create_connection((address, int(port)), timeout=timeout)
        lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_chunk(self, data: bytes) -> None:
        """One piece of a chunked body; ``b""`` ends it."""
        self.sock.sendall(f"{len(data):x}\r\n".encode() + data + b"\r\n")

    def abort(self) -> None:
        """Vanish mid-request: a reset, not a clean close."""
        self.sock.setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
        )
        self.sock.close()

    def close(self) -> None:
        self.sock.close()

    def response(self) -> RawResponse:
        """Reads one response (Content-Length bodies; the registry's error bodies are)."""
        buffer = b""
        while b"\r\n\r\n" not in buffer:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError(f"connection closed before a response: {buffer!r}")
            buffer += data
        head, _, rest = buffer.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            data = self.sock.recv(65536)
            if not data:
                break
            rest += data
        return RawResponse(int(status_line.split()[1]), headers, rest[:length])

    def closed_by_peer(self, timeout: float) -> bool:
        """Whether the server closes the connection within ``timeout`` (after any response)."""
        self.sock.settimeout(timeout)
        try:
            while self.sock.recv(65536):
                pass
        except TimeoutError:
            return False
        except ConnectionError:
            return True
        return True
