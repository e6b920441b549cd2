"""TLS 1.2 is the oldest protocol every TLS port of a running org accepts: HTTPS (REST, OAuth, console) and gRPC.

A client that offers only TLS 1.0/1.1 is refused in the handshake; TLS 1.2 and 1.3 clients connect. The old
protocols need OpenSSL's security level 0 on the client side; a control handshake against a permissive local
server proves this machine's OpenSSL can still speak TLS 1.1, so a refusal is the server's doing.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from interlink.app.server import TlsConfig
from interlink.security.tls import MINIMUM_TLS_VERSION, TlsPaths, ensure_tls, require_modern_tls
from interlink.testing import ADMIN_PASSWORD, LiveServer, live_server

pytestmark = pytest.mark.live


def _client_context(*, lowest: ssl.TLSVersion, highest: ssl.TLSVersion) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the protocol is under test here, not the certificate
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLSv1/TLSv1_1 are deprecated: that is the point
        context.minimum_version = lowest
        context.maximum_version = highest
    if lowest < ssl.TLSVersion.TLSv1_2:
        context.set_ciphers("DEFAULT:@SECLEVEL=0")  # OpenSSL 3 refuses TLS < 1.2 above security level 0
    context.set_alpn_protocols(["h2", "http/1.1"])
    return context


def old_tls_client() -> ssl.SSLContext:
    """A client offering TLS 1.0 and 1.1 only."""
    return _client_context(lowest=ssl.TLSVersion.TLSv1, highest=ssl.TLSVersion.TLSv1_1)


def _handshake(port: int, context: ssl.SSLContext) -> str:
    """The negotiated protocol version; raises ssl.SSLError (or a reset) when the server refuses."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as tls:
        return str(tls.version())


def _refused(port: int, context: ssl.SSLContext) -> bool:
    try:
        version = _handshake(port, context)
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
        return True
    raise AssertionError(f"the server accepted a {version} handshake")


@contextlib.contextmanager
def _permissive_server(paths: TlsPaths) -> Iterator[int]:
    """A local TLS server that still accepts TLS 1.0+, to show the client side can offer TLS 1.1 at all."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    context.load_cert_chain(str(paths.server_cert), str(paths.server_key))
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        with contextlib.suppress(OSError):
            connection, _ = listener.accept()
            with contextlib.suppress(OSError), context.wrap_socket(connection, server_side=True) as tls:
                tls.recv(1)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("tls-versions")) as running:
        assert running.grpc_port, "interlink up did not report a Pub/Sub port"
        yield running


@pytest.fixture(scope="module")
def can_offer_tls11(server: LiveServer) -> None:
    paths = TlsPaths.under(server.data_dir / "tls")
    try:
        with _permissive_server(paths) as port:
            version = _handshake(port, old_tls_client())
    except (ssl.SSLError, OSError) as exc:
        pytest.skip(f"this machine's OpenSSL cannot offer TLS 1.1 even at security level 0 ({exc}); the server "
                    "side is covered by test_the_https_config_sets_the_floor and the TLS 1.2/1.3 handshakes")
    assert version == "TLSv1.1"


def test_https_port_refuses_tls_1_0_and_1_1(server: LiveServer, can_offer_tls11: None) -> None:
    assert _refused(server.port, old_tls_client())
    assert _refused(server.port, _client_context(lowest=ssl.TLSVersion.TLSv1, highest=ssl.TLSVersion.TLSv1))


def test_grpc_port_refuses_tls_1_0_and_1_1(server: LiveServer, can_offer_tls11: None) -> None:
    assert server.grpc_port
    assert _refused(server.grpc_port, old_tls_client())


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3], ids=["tls1.2", "tls1.3"])
def test_https_and_grpc_ports_accept_tls_1_2_and_1_3(server: LiveServer, version: ssl.TLSVersion) -> None:
    expected = {ssl.TLSVersion.TLSv1_2: "TLSv1.2", ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[version]
    assert server.grpc_port
    for port in (server.port, server.grpc_port):
        assert _handshake(port, _client_context(lowest=version, highest=version)) == expected


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3], ids=["tls1.2", "tls1.3"])
def test_a_verifying_client_logs_in_over_tls_1_2_and_1_3(server: LiveServer, version: ssl.TLSVersion) -> None:
    context = ssl.create_default_context(cafile=server.ca_bundle)
    context.minimum_version = context.maximum_version = version
    with httpx.Client(base_url=server.url, verify=context) as client:
        page = client.get("/console/login")
        assert page.status_code == 200
        assert page.headers["strict-transport-security"].startswith("max-age=")
        assert "Secure" in page.headers["set-cookie"] and "HttpOnly" in page.headers["set-cookie"]
        body = (b'<?xml version="1.0" encoding="utf-8"?><soapenv:Envelope '
                b'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:urn="urn:partner.soap.sforce.com">'
                b'<soapenv:Body><urn:login><urn:username>admin@interlink.local</urn:username><urn:password>'
                + ADMIN_PASSWORD.encode() + b'</urn:password></urn:login></soapenv:Body></soapenv:Envelope>')
        login = client.post("/services/Soap/u/64.0", content=body,
                            headers={"Content-Type": "text/xml", "SOAPAction": "login"})
        assert login.status_code == 200 and "<sessionId>" in login.text


def test_a_grpc_client_connects(server: LiveServer) -> None:
    credentials = grpc.ssl_channel_credentials(Path(server.ca_bundle).read_bytes())
    with grpc.secure_channel(server.grpc_target, credentials) as channel:
        grpc.channel_ready_future(channel).result(timeout=10)


def test_the_https_config_sets_the_floor(tmp_path: Path) -> None:
    """The SSLContext uvicorn builds for the HTTPS port has TLS 1.2 as its minimum, whatever the defaults."""
    paths = ensure_tls(tmp_path)
    config = TlsConfig(lambda scope, receive, send: None, ssl_certfile=str(paths.server_cert),  # type: ignore[arg-type,return-value]
                       ssl_keyfile=str(paths.server_key))
    config.load()
    assert config.ssl is not None
    assert config.ssl.minimum_version == MINIMUM_TLS_VERSION == ssl.TLSVersion.TLSv1_2
    # A context that would accept TLS 1.0 (an old Python or a permissive OpenSSL configuration) is raised too,
    # and one already stricter is left alone.
    permissive = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        permissive.minimum_version = ssl.TLSVersion.TLSv1
    assert require_modern_tls(permissive).minimum_version == ssl.TLSVersion.TLSv1_2
    strict = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    strict.minimum_version = ssl.TLSVersion.TLSv1_3
    assert require_modern_tls(strict).minimum_version == ssl.TLSVersion.TLSv1_3
