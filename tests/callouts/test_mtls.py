"""Mutual TLS: a named credential presents a client certificate (kept as secrets) and trusts a private CA."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from interlink.testing import backend_org


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _cert(subject: str, key: Any, issuer: tuple[x509.Name, Any] | None, *, ca: bool = False,
          usage: Any = None, ip: str | None = None) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    issuer_name, issuer_key = issuer or (name, key)
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer_name).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
               .not_valid_after(now + dt.timedelta(days=2))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if ip is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]),
                                        critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def test_a_callout_presents_its_client_certificate(tmp_path: Path) -> None:
    ca_key, server_key, client_key = _key(), _key(), _key()
    ca = _cert("Test CA", ca_key, None, ca=True)
    ca_issuer = (ca.subject, ca_key)
    server = _cert("127.0.0.1", server_key, ca_issuer, usage=ExtendedKeyUsageOID.SERVER_AUTH, ip="127.0.0.1")
    client = _cert("interlink-client", client_key, ca_issuer, usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "server.pem").write_bytes(server.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "server.key").write_text(_pem(server_key))
    peers: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            peer = self.connection.getpeercert()  # type: ignore[attr-defined]
            peers.append(dict(item[0] for item in peer["subject"])["commonName"])
            data = json.dumps({"accountNumber": "BA-MTLS"}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_: Any) -> None:
            pass

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "server.pem", tmp_path / "server.key")
    context.load_verify_locations(ca_file)
    context.verify_mode = ssl.CERT_REQUIRED
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"https://127.0.0.1:{httpd.server_address[1]}/api"
    base = tmp_path / "project" / "metadata"
    (base / "namedCredentials").mkdir(parents=True)
    (base / "flows").mkdir()
    (base / "namedCredentials" / "Billing.yaml").write_text(
        f"url: {url}\ntls:\n  clientCertificate: ${{secret:BILLING_CERT}}\n  clientKey: ${{secret:BILLING_KEY}}\n"
        f"  caBundle: {ca_file}\n")
    (base / "namedCredentials" / "NoCert.yaml").write_text(f"url: {url}\ntls:\n  caBundle: {ca_file}\n")
    (base / "flows" / "Bill.yaml").write_text(
        "object: Account\ntrigger: create\nactions:\n"
        "  - callout: {credential: Billing, path: /accounts, body: {name: \"{!$Record.Name}\"}, "
        "on_success: {AccountNumber: accountNumber}}\n"
        "  - callout: {credential: NoCert, path: /accounts, body: {name: \"{!$Record.Name}\"}}\n")
    try:
        with backend_org(tmp_path, "sqlite", {}, bulk_workers=0) as org:
            org.secrets.set("BILLING_CERT", client.public_bytes(serialization.Encoding.PEM).decode())
            org.secrets.set("BILLING_KEY", _pem(client_key))
            (account,) = org.records.create(org.admin_context(), "Account", [{"Name": "Secure Co"}])
            while org.worker.run_once():
                pass
            assert peers == ["interlink-client"]
            number = org.query.execute(f"SELECT AccountNumber FROM Account WHERE Id = '{account.id}'",
                                       org.admin_context()).records[0]["AccountNumber"]
            assert number == "BA-MTLS"
            states = {c["credential"]: c for c in org.callouts.list()}
            assert states["Billing"]["state"] == "Delivered"
            refused = states["NoCert"]  # the server wants a client certificate: the handshake fails, retried later
            assert refused["state"] == "Queued" and refused["history"][0]["status"] is None
    finally:
        httpd.shutdown()
        httpd.server_close()
