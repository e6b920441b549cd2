"""A sample billing service (the remote side of Request and Reply): POST /api/accounts opens an account.

    python examples/billing/service.py [--port 8701]

It answers ``201 {"accountNumber": "BA-0001"}`` and serves its OpenAPI description at ``/api/openapi.yaml``
(register it with ``interlink services register billing examples/billing/openapi.yaml --credential Billing``).
``--fail-every N`` answers 503 to every Nth request, to watch retries.
"""

from __future__ import annotations

import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

SPEC = Path(__file__).with_name("openapi.yaml")


def make_server(port: int = 0, fail_every: int = 0) -> ThreadingHTTPServer:
    """The service on 127.0.0.1:``port`` (0: any free port); ``server.accounts`` lists what it opened."""
    lock = threading.Lock()
    accounts: list[dict[str, Any]] = []
    counter = {"requests": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/api/openapi.yaml":
                return self._send(404, {"error": "not found"})
            data = SPEC.read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "application/yaml")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            with lock:
                counter["requests"] += 1
                if fail_every and counter["requests"] % fail_every == 0:
                    return self._send(503, {"error": "busy, try again"})
                if self.path != "/api/accounts" or not body.get("name"):
                    return self._send(400, {"error": "name is required"})
                key = self.headers.get("Idempotency-Key")
                known = next((a for a in accounts if key and a["idempotencyKey"] == key), None)
                if known is None:  # a retry with the same key gets the same account
                    known = {"accountNumber": f"BA-{len(accounts) + 1:04d}", "name": body["name"],
                             "idempotencyKey": key}
                    accounts.append(known)
            self._send(201, {"accountNumber": known["accountNumber"]})

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, fmt: str, *args: Any) -> None:
            print("billing:", fmt % args, flush=True)

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.accounts = accounts  # type: ignore[attr-defined]
    return server


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8701)
    parser.add_argument("--fail-every", type=int, default=0)
    options = parser.parse_args()
    print(f"billing service on http://127.0.0.1:{options.port}/api", flush=True)
    make_server(options.port, options.fail_every).serve_forever()
