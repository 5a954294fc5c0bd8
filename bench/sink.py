"""A null registry for the client's own ceiling: answers POST with 202 + Location and reads
and discards PUT/PATCH bodies (Content-Length only). ``python -m bench.sink PORT``."""

from __future__ import annotations

import socket
import sys
import threading

_BUFFER = 1 << 20


def _serve_connection(conn: socket.socket) -> None:
    buffered = b""
    with conn:
        while True:
            while b"\r\n\r\n" not in buffered:
                data = conn.recv(65536)
                if not data:
                    return
                buffered += data
            head, _, buffered = buffered.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method = lines[0].split(" ", 1)[0]
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            left = length - len(buffered)
            buffered = buffered[length:] if left <= 0 else b""
            view = bytearray(_BUFFER)
            while left > 0:
                got = conn.recv_into(view, min(left, _BUFFER))
                if not got:
                    return
                left -= got
            if method == "POST":
                status, extra = "202 Accepted", "Location: /v2/sink/blobs/uploads/u\r\n"
            else:
                status, extra = "201 Created", ""
            conn.sendall(f"HTTP/1.1 {status}\r\n{extra}Content-Length: 0\r\n\r\n".encode())


def main(port: int) -> None:
    with socket.create_server(("127.0.0.1", port)) as server:
        while True:
            conn, _ = server.accept()
            threading.Thread(target=_serve_connection, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main(int(sys.argv[1]))
