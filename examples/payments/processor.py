"""A sample payment processor (the remote system of the UI Update pattern): when a customer pays, it tells the org
by publishing ``Payment_Received__e`` over the REST API, after logging in with OAuth 2.0 like any external system.

    python examples/payments/processor.py pay 00000001 --amount 120.50            # a case number or a case Id
    python examples/payments/processor.py serve --port 8704                      # POST /payments {"case", "amount"}

Where the org is and who the processor is come from flags or environment variables:

- ``--url`` / ``PAYMENTS_URL`` (default: the ``url`` of ``--data-dir``'s ``run/server.json``, ``.interlink``),
- ``--client-id`` / ``PAYMENTS_CLIENT_ID`` and ``--client-secret`` / ``PAYMENTS_CLIENT_SECRET``: a connected app
  (``interlink apps create "Payment Processor" --run-as admin@interlink.local`` prints both),
- optionally ``--username`` / ``PAYMENTS_USERNAME`` and ``--password`` / ``PAYMENTS_PASSWORD`` for the
  username-password flow; without them the client-credentials flow logs in as the app's run-as user,
- ``--ca-bundle`` / ``PAYMENTS_CA_BUNDLE`` (default: the CA bundle in ``run/server.json``, else
  ``REQUESTS_CA_BUNDLE`` or ``SSL_CERT_FILE``) to trust the org's local CA.

It depends only on httpx and does not import the ``interlink`` package: it is what a real payment system would do.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import ssl
import sys
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

API_VERSION = "66.0"
EVENT = "Payment_Received__e"
STATUSES = ("Paid", "Declined", "Refunded")
_CASE_ID = re.compile(r"^500[A-Za-z0-9]{12}([A-Za-z0-9]{3})?$")


class PaymentError(Exception):
    """The org refused something; the message is the org's (``errorCode: message``)."""


@dataclass
class Payment:
    """A payment the org accepted: the case it is for and the published event's uuid."""

    case_id: str
    case_number: str
    amount: float
    status: str
    event_uuid: str | None
    event_id: str | None


def _org_error(response: httpx.Response) -> PaymentError:
    try:
        body = response.json()
    except ValueError:
        return PaymentError(f"HTTP {response.status_code}: {response.text[:200]}")
    if isinstance(body, list) and body and isinstance(body[0], dict):
        return PaymentError(f"{body[0].get('errorCode')}: {body[0].get('message')}")
    if isinstance(body, dict) and "error" in body:
        return PaymentError(f"{body['error']}: {body.get('error_description', '')}")
    return PaymentError(f"HTTP {response.status_code}: {body}")


class Processor:
    """A logged-in connection to the org that reports payments."""

    def __init__(self, url: str, *, client_id: str, client_secret: str, username: str | None = None,
                 password: str | None = None, ca_bundle: str | None = None, timeout: float = 20.0) -> None:
        verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca_bundle) if ca_bundle else True
        self.http = httpx.Client(verify=verify, timeout=timeout)
        form = {"client_id": client_id, "client_secret": client_secret}
        if username:
            form.update(grant_type="password", username=username, password=password or "")
        else:
            form["grant_type"] = "client_credentials"
        answer = self.http.post(f"{url.rstrip('/')}/services/oauth2/token", data=form)
        if answer.status_code != 200:
            self.http.close()
            raise _org_error(answer)
        token = answer.json()
        self.instance_url = str(token.get("instance_url") or url).rstrip("/")
        self.http.headers["Authorization"] = f"Bearer {token['access_token']}"
        self.api = f"{self.instance_url}/services/data/v{API_VERSION}"

    def close(self) -> None:
        self.http.close()

    def find_case(self, case: str) -> tuple[str, str]:
        """(Id, CaseNumber) of a case given by either; a short number is padded (``42`` -> ``00000042``)."""
        text = case.strip()
        if _CASE_ID.match(text):
            where = f"Id = '{text}'"
        elif text.isdigit():
            where = f"CaseNumber = '{text.zfill(8)}'"
        else:
            raise PaymentError(f"{case!r} is neither a case Id (500...) nor a case number")
        answer = self.http.get(f"{self.api}/query", params={"q": f"SELECT Id, CaseNumber FROM Case WHERE {where}"})
        if answer.status_code != 200:
            raise _org_error(answer)
        records = answer.json()["records"]
        if not records:
            raise PaymentError(f"There is no case {case}")
        return records[0]["Id"], records[0]["CaseNumber"]

    def pay(self, case: str, amount: float, status: str = "Paid") -> Payment:
        """Report a payment for ``case``: publish Payment_Received__e (POST .../sobjects/Payment_Received__e)."""
        if status not in STATUSES:
            raise PaymentError(f"status: one of {', '.join(STATUSES)}")
        case_id, number = self.find_case(case)
        answer = self.http.post(f"{self.api}/sobjects/{EVENT}",
                                json={"CaseId__c": case_id, "Amount__c": round(amount, 2), "Status__c": status})
        if answer.status_code != 201:
            raise _org_error(answer)
        body = answer.json()
        # The platform reports the published event's uuid as an OPERATION_ENQUEUED "error" beside success: true.
        uuid = next((e.get("message") for e in body.get("errors") or [] if e.get("statusCode") == "OPERATION_ENQUEUED"),
                    None)
        return Payment(case_id, number, round(amount, 2), status, uuid, body.get("id"))


# -- the HTTP face: a payment terminal posts here ------------------------------------------------------------------


def make_server(processor: Processor, port: int = 0) -> ThreadingHTTPServer:
    """``POST /payments {"case": "00000001", "amount": 120.5, "status": "Paid"}`` on 127.0.0.1:``port``."""
    lock = threading.Lock()  # one httpx client, used by one request at a time

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            if self.path != "/payments":
                return self._send(404, {"error": "not found"})
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                with lock:
                    paid = processor.pay(str(body["case"]), float(body["amount"]), str(body.get("status", "Paid")))
            except (KeyError, TypeError, ValueError):
                return self._send(400, {"error": "send {\"case\": \"00000001\", \"amount\": 120.5}"})
            except PaymentError as error:
                return self._send(422, {"error": str(error)})
            self._send(201, paid.__dict__)

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            del format, args

    return ThreadingHTTPServer(("127.0.0.1", port), Handler)


# -- the command line ----------------------------------------------------------------------------------------------


def _server_file(data_dir: str) -> dict[str, Any]:
    try:
        return json.loads((Path(data_dir) / "run" / "server.json").read_text())  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return {}


def connect(options: argparse.Namespace) -> Processor:
    running = _server_file(options.data_dir)
    url = options.url or os.environ.get("PAYMENTS_URL") or running.get("url")
    if not url:
        raise PaymentError("Where is the org? Pass --url (or PAYMENTS_URL), or --data-dir of a running org")
    client_id = options.client_id or os.environ.get("PAYMENTS_CLIENT_ID")
    client_secret = options.client_secret or os.environ.get("PAYMENTS_CLIENT_SECRET")
    if not client_id or not client_secret:
        raise PaymentError("Pass --client-id and --client-secret (or PAYMENTS_CLIENT_ID / PAYMENTS_CLIENT_SECRET): "
                           "interlink apps create \"Payment Processor\" --run-as admin@interlink.local prints them")
    ca_bundle = (options.ca_bundle or os.environ.get("PAYMENTS_CA_BUNDLE") or running.get("ca_bundle")
                 or os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE"))
    return Processor(url, client_id=client_id, client_secret=client_secret,
                     username=options.username or os.environ.get("PAYMENTS_USERNAME"),
                     password=options.password or os.environ.get("PAYMENTS_PASSWORD"), ca_bundle=ca_bundle)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="The org's URL, e.g. https://127.0.0.1:8443 (PAYMENTS_URL)")
    parser.add_argument("--data-dir", default=".interlink", help="A local org's data directory (for its URL and CA)")
    parser.add_argument("--client-id", help="The connected app's consumer key (PAYMENTS_CLIENT_ID)")
    parser.add_argument("--client-secret", help="The connected app's consumer secret (PAYMENTS_CLIENT_SECRET)")
    parser.add_argument("--username", help="Log in as this user (password flow; PAYMENTS_USERNAME)")
    parser.add_argument("--password", help="That user's password (PAYMENTS_PASSWORD)")
    parser.add_argument("--ca-bundle", help="CA bundle to trust the org's certificate (PAYMENTS_CA_BUNDLE)")
    commands = parser.add_subparsers(dest="command", required=True)
    pay = commands.add_parser("pay", help="Report one payment for a case")
    pay.add_argument("case", help="The case: its number (00000001, or 1) or its Id (500...)")
    pay.add_argument("--amount", type=float, required=True, help="The amount paid, e.g. 120.50")
    pay.add_argument("--status", default="Paid", choices=STATUSES)
    pay.add_argument("--json", action="store_true", help="Print the result as JSON")
    serve = commands.add_parser("serve", help="Take payments over HTTP: POST /payments {\"case\", \"amount\"}")
    serve.add_argument("--port", type=int, default=8704)
    options = parser.parse_args(argv)
    try:
        processor = connect(options)
    except (PaymentError, httpx.HTTPError) as error:
        print(f"payments: {error}", file=sys.stderr)
        return 1
    try:
        if options.command == "pay":
            try:
                paid = processor.pay(options.case, options.amount, options.status)
            except (PaymentError, httpx.HTTPError) as error:
                print(f"payments: {error}", file=sys.stderr)
                return 1
            if options.json:
                print(json.dumps(paid.__dict__))
            else:
                print(f"payments: case {paid.case_number} ({paid.case_id}) {paid.status.lower()} {paid.amount:.2f}; "
                      f"published {EVENT} (event {paid.event_uuid})")
            return 0
        server = make_server(processor, options.port)
        print(f"payments: taking payments at http://127.0.0.1:{server.server_address[1]}/payments", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
        return 0
    finally:
        processor.close()


if __name__ == "__main__":
    sys.exit(main())
