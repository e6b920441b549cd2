"""Local TLS material: generation, reuse, reissue, real handshakes and CA (un)installation.

Nothing here touches the real system trust store or the real certifi bundle: installation tests
use ``system=False`` and a copy of certifi's file.
"""

from __future__ import annotations

import http.server
import ipaddress
import shlex
import shutil
import socket
import ssl
import stat
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import certifi
import pytest
import requests
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store

from interlink.security import tls
from interlink.security.tls import (
    TlsPaths,
    ca_export_lines,
    client_ssl_context,
    ensure_tls,
    install_ca,
    server_ssl_context,
    uninstall_ca,
)

TIMEOUT_S = 5.0


def _files(paths: TlsPaths) -> dict[str, Path]:
    return {
        "ca_cert": paths.ca_cert,
        "ca_key": paths.ca_key,
        "server_cert": paths.server_cert,
        "server_key": paths.server_key,
        "bundle": paths.bundle,
    }


def _snapshot(paths: TlsPaths) -> dict[str, bytes]:
    return {name: path.read_bytes() for name, path in _files(paths).items()}


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _sans(cert: x509.Certificate) -> tuple[set[str], set[ipaddress.IPv4Address | ipaddress.IPv6Address]]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(san.get_values_for_type(x509.DNSName)), set(san.get_values_for_type(x509.IPAddress))


def _verify_for(paths: TlsPaths, name: x509.DNSName | x509.IPAddress) -> None:
    """Full RFC 5280 path validation of the server certificate against the local CA."""
    verifier = PolicyBuilder().store(Store([_cert(paths.ca_cert)])).build_server_verifier(name)
    verifier.verify(_cert(paths.server_cert), [])


@pytest.fixture
def paths(tmp_path: Path) -> TlsPaths:
    return ensure_tls(tmp_path / "data")


# ---------------------------------------------------------------------------------------------
# Generation and reuse
# ---------------------------------------------------------------------------------------------


def test_generation_creates_all_files_with_private_modes(tmp_path: Path) -> None:
    paths = ensure_tls(tmp_path / "data")

    tls_dir = tmp_path / "data" / "tls"
    assert stat.S_IMODE(tls_dir.stat().st_mode) == 0o700
    for name, path in _files(paths).items():
        assert path.parent == tls_dir, name
        assert path.is_file(), name
    assert stat.S_IMODE(paths.ca_key.stat().st_mode) == 0o600
    assert stat.S_IMODE(paths.server_key.stat().st_mode) == 0o600
    assert not list(tls_dir.glob("*.tmp")), "temporary files left behind"


def test_ca_certificate_shape(paths: TlsPaths) -> None:
    ca = _cert(paths.ca_cert)
    common_name = ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert isinstance(common_name, str)
    assert common_name.startswith("Interlink Local CA ")
    assert len(common_name) > len("Interlink Local CA ")
    assert ca.issuer == ca.subject
    ca.verify_directly_issued_by(ca)

    basic = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign
    ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)

    lifetime = ca.not_valid_after_utc - ca.not_valid_before_utc
    assert timedelta(days=3649) <= lifetime <= timedelta(days=3651)


def test_server_certificate_verifies_and_covers_local_hosts(paths: TlsPaths) -> None:
    server = _cert(paths.server_cert)
    ca = _cert(paths.ca_cert)
    server.verify_directly_issued_by(ca)

    dns_names, ips = _sans(server)
    assert "localhost" in dns_names
    assert ipaddress.ip_address("127.0.0.1") in ips
    assert ipaddress.ip_address("::1") in ips

    eku = server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku
    aki = server.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ca_ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ca_ski.digest
    assert server.not_valid_after_utc - server.not_valid_before_utc <= timedelta(days=825)

    _verify_for(paths, x509.DNSName("localhost"))
    _verify_for(paths, x509.IPAddress(ipaddress.ip_address("127.0.0.1")))


def test_bundle_holds_system_roots_then_local_ca(paths: TlsPaths) -> None:
    bundle = paths.bundle.read_text()
    ca_pem = paths.ca_cert.read_text().strip()
    assert bundle.rstrip().endswith(ca_pem)
    assert bundle.count("-----BEGIN CERTIFICATE-----") > 50  # the public roots came along
    first_certifi_pem = Path(certifi.where()).read_text().split("-----END CERTIFICATE-----")[0]
    assert first_certifi_pem.split("-----BEGIN CERTIFICATE-----")[1] in bundle


def test_second_call_reuses_files(tmp_path: Path) -> None:
    first = ensure_tls(tmp_path / "data")
    before = _snapshot(first)
    second = ensure_tls(tmp_path / "data")
    assert second == first
    assert _snapshot(second) == before


def test_extra_host_reissues_only_the_server_certificate(tmp_path: Path) -> None:
    paths = ensure_tls(tmp_path / "data")
    before = _snapshot(paths)

    ensure_tls(tmp_path / "data", hosts=("localhost", "127.0.0.1", "interlink.test", "10.1.2.3"))
    after = _snapshot(paths)

    assert after["ca_cert"] == before["ca_cert"]
    assert after["ca_key"] == before["ca_key"]
    assert after["bundle"] == before["bundle"]
    assert after["server_cert"] != before["server_cert"]
    dns_names, ips = _sans(_cert(paths.server_cert))
    assert {"localhost", "interlink.test"} <= dns_names
    # Earlier names are kept, so callers with the default hosts do not make it flap.
    assert {ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")} <= ips
    assert ipaddress.ip_address("10.1.2.3") in ips
    _verify_for(paths, x509.DNSName("interlink.test"))

    ensure_tls(tmp_path / "data")
    assert _snapshot(paths) == after


def test_server_certificate_near_expiry_is_reissued(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tls, "SERVER_VALIDITY", timedelta(days=10))
    paths = ensure_tls(tmp_path / "data")
    short_lived = _snapshot(paths)
    monkeypatch.undo()

    ensure_tls(tmp_path / "data")
    after = _snapshot(paths)
    assert after["ca_cert"] == short_lived["ca_cert"]
    assert after["server_cert"] != short_lived["server_cert"]
    remaining = _cert(paths.server_cert).not_valid_after_utc - datetime.now(UTC)
    assert remaining > timedelta(days=800)


def test_corrupt_server_certificate_is_replaced(paths: TlsPaths) -> None:
    ca_before = paths.ca_cert.read_bytes()
    paths.server_cert.write_text("not a certificate")
    ensure_tls(paths.ca_cert.parent.parent)
    assert paths.ca_cert.read_bytes() == ca_before
    _verify_for(paths, x509.DNSName("localhost"))


def test_concurrent_first_calls_agree(tmp_path: Path) -> None:
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: ensure_tls(tmp_path / "data"), range(8)))
    assert len(set(results)) == 1
    _verify_for(results[0], x509.DNSName("localhost"))
    server_ssl_context(results[0])  # key and certificate match


def test_hosts_are_validated_and_normalised(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        ensure_tls(tmp_path / "data", hosts=())
    paths = ensure_tls(tmp_path / "data", hosts="LocalHost")  # a lone string is one host
    dns_names, _ = _sans(_cert(paths.server_cert))
    assert dns_names == {"localhost"}
    ensure_tls(tmp_path / "data", hosts=["[::1]"])
    _, ips = _sans(_cert(paths.server_cert))
    assert ipaddress.ip_address("::1") in ips


# ---------------------------------------------------------------------------------------------
# Real handshakes
# ---------------------------------------------------------------------------------------------


def test_handshake_with_ssl_contexts(paths: TlsPaths) -> None:
    server_context = server_ssl_context(paths)
    assert server_context.minimum_version >= ssl.TLSVersion.TLSv1_2
    received: list[bytes] = []
    errors: list[BaseException] = []

    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(TIMEOUT_S)
        port = listener.getsockname()[1]

        def serve() -> None:
            try:
                for _ in range(2):
                    conn, _addr = listener.accept()
                    conn.settimeout(TIMEOUT_S)
                    with server_context.wrap_socket(conn, server_side=True) as tls_conn:
                        received.append(tls_conn.recv(16))
                        tls_conn.sendall(b"pong")
            except BaseException as exc:  # surfaced by the assertions below
                errors.append(exc)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()

        client_context = client_ssl_context(paths)
        for server_name in ("localhost", "127.0.0.1"):
            with (
                socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as raw,
                client_context.wrap_socket(raw, server_hostname=server_name) as conn,
            ):
                assert conn.version() in {"TLSv1.2", "TLSv1.3"}
                conn.sendall(b"ping")
                assert conn.recv(16) == b"pong"
        thread.join(TIMEOUT_S)

    assert not errors
    assert received == [b"ping", b"ping"]


class _OkHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass


@pytest.fixture
def https_port(paths: TlsPaths) -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _OkHandler)
    server.timeout = TIMEOUT_S
    server.socket = server_ssl_context(paths).wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(TIMEOUT_S)


def test_requests_trusts_the_bundle(paths: TlsPaths, https_port: int) -> None:
    response = requests.get(f"https://127.0.0.1:{https_port}/", verify=str(paths.bundle), timeout=TIMEOUT_S)
    assert response.status_code == 200
    assert response.text == "ok"


def test_requests_without_the_local_ca_fails(paths: TlsPaths, https_port: int, tmp_path: Path) -> None:
    roots_only = tmp_path / "roots.pem"
    shutil.copyfile(certifi.where(), roots_only)  # the pristine certifi roots, whatever is installed
    ca_pem = paths.ca_cert.read_text().strip()
    roots_only.write_text(roots_only.read_text().replace(ca_pem, ""))
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"https://127.0.0.1:{https_port}/", verify=str(roots_only), timeout=TIMEOUT_S)


# ---------------------------------------------------------------------------------------------
# Trusting the CA
# ---------------------------------------------------------------------------------------------


def test_ca_export_lines_point_at_the_bundle(tmp_path: Path) -> None:
    paths = ensure_tls(tmp_path / "data dir with spaces")
    exported: dict[str, str] = {}
    for line in ca_export_lines(paths).splitlines():
        words = shlex.split(line)
        assert words[0] == "export"
        name, _, value = words[1].partition("=")
        exported[name] = value
    assert exported["REQUESTS_CA_BUNDLE"] == str(paths.bundle)
    assert exported["SSL_CERT_FILE"] == str(paths.bundle)
    assert exported["CURL_CA_BUNDLE"] == str(paths.bundle)
    assert exported["NODE_EXTRA_CA_CERTS"] == str(paths.ca_cert)


def test_install_into_certifi_copy_is_idempotent_and_reversible(paths: TlsPaths, tmp_path: Path) -> None:
    bundle_copy = tmp_path / "cacert.pem"
    shutil.copyfile(certifi.where(), bundle_copy)
    original = bundle_copy.read_bytes()
    real_certifi = Path(certifi.where()).read_bytes()
    ca_pem = paths.ca_cert.read_text().strip()

    first = install_ca(paths, system=False, certifi_path=bundle_copy)
    assert len(first) == 1 and "appended" in first[0]
    installed = bundle_copy.read_text()
    assert installed.count(ca_pem) == 1
    assert installed.startswith(original.decode())

    second = install_ca(paths, system=False, certifi_path=bundle_copy)
    assert "already present" in second[0]
    assert bundle_copy.read_text() == installed

    removed = uninstall_ca(paths, system=False, certifi_path=bundle_copy)
    assert "removed" in removed[0]
    assert bundle_copy.read_bytes() == original

    again = uninstall_ca(paths, system=False, certifi_path=bundle_copy)
    assert "not present" in again[0]
    assert bundle_copy.read_bytes() == original
    assert Path(certifi.where()).read_bytes() == real_certifi


def test_installed_certifi_copy_is_trusted_by_requests(
    paths: TlsPaths, https_port: int, tmp_path: Path
) -> None:
    bundle_copy = tmp_path / "cacert.pem"
    shutil.copyfile(certifi.where(), bundle_copy)
    install_ca(paths, system=False, certifi_path=bundle_copy)
    response = requests.get(f"https://localhost:{https_port}/", verify=str(bundle_copy), timeout=TIMEOUT_S)
    assert response.status_code == 200


def test_install_with_nothing_selected_does_nothing(paths: TlsPaths, tmp_path: Path) -> None:
    bundle_copy = tmp_path / "cacert.pem"
    shutil.copyfile(certifi.where(), bundle_copy)
    assert install_ca(paths, system=False, certifi_bundle=False, certifi_path=bundle_copy) == []
    assert uninstall_ca(paths, system=False, certifi_bundle=False, certifi_path=bundle_copy) == []
    assert bundle_copy.read_bytes() == Path(certifi.where()).read_bytes()


def test_system_install_skips_without_a_trust_directory(
    paths: TlsPaths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tls, "SYSTEM_CA_DIR", tmp_path / "no-such-dir")
    report = install_ca(paths, certifi_bundle=False)
    assert len(report) == 1 and "skipped" in report[0]


def test_system_install_reports_permission_denied(
    paths: TlsPaths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trust_dir = tmp_path / "ca-certificates"
    trust_dir.mkdir()
    monkeypatch.setattr(tls, "SYSTEM_CA_DIR", trust_dir)

    def deny(*_args: object, **_kwargs: object) -> None:
        raise PermissionError("denied")

    monkeypatch.setattr(tls, "_atomic_write", deny)
    report = install_ca(paths, certifi_bundle=False)
    assert len(report) == 1 and "no permission" in report[0]


def test_system_install_and_uninstall_in_a_fake_trust_directory(
    paths: TlsPaths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trust_dir = tmp_path / "ca-certificates"
    trust_dir.mkdir()
    monkeypatch.setattr(tls, "SYSTEM_CA_DIR", trust_dir)
    updates: list[str] = []
    monkeypatch.setattr(tls, "_update_ca_certificates", lambda: updates.append("run") or "system: updated")

    report = install_ca(paths, certifi_bundle=False)
    installed = trust_dir / tls.SYSTEM_CA_NAME
    assert installed.read_text().strip() == paths.ca_cert.read_text().strip()
    assert report[-1] == "system: updated"
    assert "already installed" in install_ca(paths, certifi_bundle=False)[0]
    assert updates == ["run"]

    uninstall_ca(paths, certifi_bundle=False)
    assert not installed.exists()
    assert updates == ["run", "run"]
