"""A sample outbound-message listener (an ERP receiving Fire and Forget notifications).

    python examples/outbound/listener.py [--port 8702] [--down-for 3]

It acknowledges each message with ``<Ack>true</Ack>`` and drops notifications it has seen (the platform delivers
at least once). ``--down-for N`` answers 503 to the first N messages, to watch the org retry.
"""

from __future__ import annotations

import argparse
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from xml.etree import ElementTree as ET

OM = "{http://soap.sforce.com/2005/09/outbound}"
SF = "{urn:sobject.enterprise.soap.sforce.com}"
ACK = (b'<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope '
       b'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>'
       b'<notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound"><Ack>true</Ack>'
       b"</notificationsResponse></soapenv:Body></soapenv:Envelope>")


def make_server(port: int = 0, down_for: int = 0) -> ThreadingHTTPServer:
    """The listener on 127.0.0.1:``port``; ``server.received`` holds each notification once: (id, record fields)."""
    lock = threading.Lock()
    seen: set[str] = set()
    received: list[tuple[str, dict[str, str]]] = []
    state = {"messages": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with lock:
                state["messages"] += 1
                if state["messages"] <= down_for:
                    self.send_response(503)
                    self.end_headers()
                    return
                root = ET.fromstring(body)
                for note in root.iter(f"{OM}Notification"):
                    note_id = note.findtext(f"{OM}Id") or ""
                    if note_id in seen:
                        continue  # a redelivery: already handled
                    seen.add(note_id)
                    record = note.find(f"{OM}sObject")
                    fields = {child.tag.rpartition("}")[2]: child.text or ""
                              for child in (list(record) if record is not None else [])}
                    received.append((note_id, fields))
                    print(f"listener: {note_id} {fields}", flush=True)
            self.send_response(200)
            self.send_header("Content-Type", "text/xml; charset=utf-8")
            self.send_header("Content-Length", str(len(ACK)))
            self.end_headers()
            self.wfile.write(ACK)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.received = received  # type: ignore[attr-defined]
    return server


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8702)
    parser.add_argument("--down-for", type=int, default=0)
    options = parser.parse_args()
    print(f"outbound-message listener on http://127.0.0.1:{options.port}/erp/notifications", flush=True)
    make_server(options.port, options.down_for).serve_forever()
