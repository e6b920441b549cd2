"""A kept-alive connection outlives the pause of common polling clients (simple-salesforce waits 5 s between Bulk
job checks): the server must not close it at 5 s, or a pooled connection is reused just as it is closed."""

from __future__ import annotations

import socket
import ssl
import time
from pathlib import Path

from interlink.testing import live_server


def _get(tls: ssl.SSLSocket, host: str) -> bytes:
    tls.sendall(f"GET /services/data HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\n\r\n".encode())
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = tls.recv(65536)
        if not chunk:
            break
        answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    length = int(next((line.split(b":", 1)[1] for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), b"0"))
    while len(body) < length:
        chunk = tls.recv(65536)
        if not chunk:
            break
        body += chunk
    return head


def test_an_idle_connection_is_kept_past_a_polling_pause(tmp_path: Path) -> None:
    with live_server(tmp_path / "org") as server:
        context = ssl.create_default_context(cafile=server.ca_bundle)
        with socket.create_connection(("127.0.0.1", server.port), timeout=20) as raw, \
                context.wrap_socket(raw, server_hostname="localhost") as tls:
            assert _get(tls, server.host).startswith(b"HTTP/1.1 200")
            time.sleep(6)  # longer than uvicorn's default keep-alive of 5 s
            assert _get(tls, server.host).startswith(b"HTTP/1.1 200")
