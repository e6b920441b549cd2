"""Local TLS material: a private CA, a server certificate it signs, and a trust bundle.

Interlink serves HTTPS by default, the way ``mkcert`` does it: the first start creates a local
certificate authority under ``<data_dir>/tls/`` and a server certificate for ``localhost``,
``127.0.0.1`` and ``::1`` signed by it. Clients trust the CA in one of two ways:

* point them at ``bundle.pem`` (the system's trusted roots plus the local CA, so exporting it as
  ``REQUESTS_CA_BUNDLE`` or ``SSL_CERT_FILE`` never breaks other HTTPS) - see :func:`ca_export_lines`;
* or install the CA into the system store and the active environment's ``certifi`` bundle with
  :func:`install_ca` (``interlink ca --install``), reversed by :func:`uninstall_ca`.

Files in ``<data_dir>/tls/`` (the directory is ``0700``, private keys ``0600``)::

    ca.pem          local CA certificate (EC P-256, 10 years)
    ca-key.pem      local CA private key
    server.pem      server certificate (EC P-256, 825 days, SANs from ``hosts``)
    server-key.pem  server private key
    bundle.pem      system roots + local CA (local CA last)

Later calls reuse the files. Only the server certificate is reissued, when it does not cover the
requested hosts or expires within 30 days; the CA is kept so already-configured clients keep
working. Generation runs under an advisory file lock and every file is written atomically (temp
file + ``os.replace``), so processes starting at the same time neither corrupt nor mismatch them.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import shlex
import shutil
import ssl
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeAlias

import certifi
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

try:  # POSIX only; on other platforms generation relies on atomic writes alone.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

DEFAULT_HOSTS: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")
CA_VALIDITY = timedelta(days=3650)
SERVER_VALIDITY = timedelta(days=825)
RENEW_BEFORE = timedelta(days=30)
# Backdate notBefore a little so clients with a slightly slow clock accept a fresh certificate.
_CLOCK_SKEW = timedelta(hours=1)

SYSTEM_CA_BUNDLES: tuple[Path, ...] = (Path("/etc/ssl/certs/ca-certificates.crt"),)
SYSTEM_CA_DIR = Path("/usr/local/share/ca-certificates")
SYSTEM_CA_NAME = "interlink-local-ca.crt"
_UPDATE_TIMEOUT_S = 120

_DIR_MODE = 0o700
_KEY_MODE = 0o600
_CERT_MODE = 0o644

HostName: TypeAlias = x509.DNSName | x509.IPAddress


@dataclass(frozen=True)
class TlsPaths:
    """Where the local TLS material lives (all inside ``<data_dir>/tls/``)."""

    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    bundle: Path

    @classmethod
    def under(cls, tls_dir: Path) -> TlsPaths:
        """The standard file names inside ``tls_dir`` (nothing is created)."""
        return cls(
            ca_cert=tls_dir / "ca.pem",
            ca_key=tls_dir / "ca-key.pem",
            server_cert=tls_dir / "server.pem",
            server_key=tls_dir / "server-key.pem",
            bundle=tls_dir / "bundle.pem",
        )


# --------------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------------


def ensure_tls(data_dir: Path, hosts: Sequence[str] = DEFAULT_HOSTS) -> TlsPaths:
    """Create or reuse the local CA, the server certificate for ``hosts`` and the trust bundle.

    ``hosts`` are DNS names or IP addresses (``[::1]`` brackets are accepted). When the existing
    server certificate has to be reissued, its previous names are kept alongside the requested
    ones, so alternating callers do not make it flap.
    """
    wanted = _parse_hosts(hosts)
    tls_dir = Path(data_dir) / "tls"
    tls_dir.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
    os.chmod(tls_dir, _DIR_MODE)  # mkdir's mode is filtered by the umask and ignored if it exists
    paths = TlsPaths.under(tls_dir)

    with _locked(tls_dir / ".lock"):
        ca = _load_ca(paths)
        if ca is None:
            ca = _create_ca(paths)
        ca_cert, ca_key = ca
        _ensure_server_cert(paths, ca_cert, ca_key, wanted)
        _ensure_bundle(paths)
    return paths


def _parse_hosts(hosts: Sequence[str]) -> list[HostName]:
    if isinstance(hosts, str):  # a lone host, not an iterable of characters
        hosts = (hosts,)
    names: list[HostName] = []
    for raw in hosts:
        name = _parse_host(raw)
        if name not in names:
            names.append(name)
    if not names:
        raise ValueError("at least one host name or address is required for the server certificate")
    return names


def _parse_host(raw: str) -> HostName:
    host = raw.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host:
        raise ValueError(f"empty host name: {raw!r}")
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        pass
    host = host.lower().rstrip(".")
    if not host.isascii():
        host = host.encode("idna").decode("ascii")
    return x509.DNSName(host)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _create_ca(paths: TlsPaths) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _new_key()
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Interlink"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"Interlink Local CA {secrets.token_hex(4)}"),
        ]
    )
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    not_before = datetime.now(UTC) - _CLOCK_SKEW
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(key, hashes.SHA256())
    )
    # Key first: a CA certificate on disk always has its key next to it.
    _atomic_write(paths.ca_key, _key_pem(key), _KEY_MODE)
    _atomic_write(paths.ca_cert, cert.public_bytes(serialization.Encoding.PEM), _CERT_MODE)
    return cert, key


def _load_ca(paths: TlsPaths) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
    """The stored CA, or None if it is missing, unreadable or its key does not match."""
    cert = _read_cert(paths.ca_cert)
    key = _read_key(paths.ca_key)
    if cert is None or key is None or not _same_public_key(cert, key):
        return None
    return cert, key


def _ensure_server_cert(
    paths: TlsPaths,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    wanted: list[HostName],
) -> None:
    cert = _read_cert(paths.server_cert)
    key = _read_key(paths.server_key)
    current = _san_names(cert) if cert is not None else []
    if (
        cert is not None
        and key is not None
        and _same_public_key(cert, key)
        and _issued_by(cert, ca_cert)
        and all(name in current for name in wanted)
        and cert.not_valid_after_utc - datetime.now(UTC) > RENEW_BEFORE
    ):
        return
    names = wanted + [name for name in current if name not in wanted]
    if key is None:
        # Reusing a valid key means the key file never changes under a concurrent reader.
        key = _new_key()
        _atomic_write(paths.server_key, _key_pem(key), _KEY_MODE)
    cert = _issue_server_cert(key, ca_cert, ca_key, names)
    _atomic_write(paths.server_cert, cert.public_bytes(serialization.Encoding.PEM), _CERT_MODE)


def _issue_server_cert(
    key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    names: list[HostName],
) -> x509.Certificate:
    first = names[0].value
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Interlink"),
            x509.NameAttribute(NameOID.COMMON_NAME, str(first)),
        ]
    )
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    not_before = datetime.now(UTC) - _CLOCK_SKEW
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(min(not_before + SERVER_VALIDITY, ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )


def _san_names(cert: x509.Certificate) -> list[HostName]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    names: list[HostName] = []
    for name in san:
        if isinstance(name, x509.DNSName):
            names.append(x509.DNSName(name.value.lower()))
        elif isinstance(name, x509.IPAddress):
            names.append(name)
    return names


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _same_public_key(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> bool:
    return cert.public_key() == key.public_key()


def _read_cert(path: Path) -> x509.Certificate | None:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return None


def _read_key(path: Path) -> ec.EllipticCurvePrivateKey | None:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        return None
    return key


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _ensure_bundle(paths: TlsPaths) -> None:
    content = _bundle_content(paths.ca_cert.read_bytes())
    try:
        if paths.bundle.read_bytes() == content:
            return
    except OSError:
        pass
    _atomic_write(paths.bundle, content, _CERT_MODE)


def _bundle_content(ca_pem: bytes) -> bytes:
    """System roots (certifi, then the OS bundle if present), then the local CA last."""
    parts: list[bytes] = []
    for source in (Path(certifi.where()), *SYSTEM_CA_BUNDLES):
        try:
            data = source.read_bytes()
        except OSError:
            continue
        parts.append(b"# Source: " + str(source).encode() + b"\n" + data.rstrip(b"\n") + b"\n")
    parts.append(b"# Source: Interlink local CA\n" + ca_pem.rstrip(b"\n") + b"\n")
    return b"\n".join(parts)


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


def _atomic_write(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to ``path`` via a temp file in the same directory and ``os.replace``."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp_name, mode)  # mkstemp creates 0600; certificates are world-readable
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``lock_path`` (no-op where ``fcntl`` is unavailable)."""
    if fcntl is None:  # pragma: no cover - Windows
        yield
        return
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, _KEY_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


# --------------------------------------------------------------------------------------------
# Trusting the CA
# --------------------------------------------------------------------------------------------


def ca_export_lines(paths: TlsPaths) -> str:
    """Shell ``export`` lines that make common clients trust the local CA (``eval "$(interlink ca)"``).

    The bundle variables replace a client's roots, which is safe because the bundle carries the
    system roots too; ``NODE_EXTRA_CA_CERTS`` adds to Node's roots, so it gets the CA alone.
    """
    bundle = shlex.quote(str(paths.bundle))
    lines = [
        f"export REQUESTS_CA_BUNDLE={bundle}",
        f"export SSL_CERT_FILE={bundle}",
        f"export CURL_CA_BUNDLE={bundle}",
        f"export NODE_EXTRA_CA_CERTS={shlex.quote(str(paths.ca_cert))}",
    ]
    return "\n".join(lines) + "\n"


def install_ca(
    paths: TlsPaths,
    *,
    system: bool = True,
    certifi_bundle: bool = True,
    certifi_path: Path | None = None,
) -> list[str]:
    """Trust the local CA system-wide and in this environment's certifi bundle (``mkcert -install``).

    The system step copies the CA to ``/usr/local/share/ca-certificates/`` and runs
    ``update-ca-certificates`` (Debian/Ubuntu layout); it is skipped, not fatal, when that directory
    does not exist or is not writable. The certifi step appends the CA unless its exact PEM text is
    already there. ``certifi_path`` overrides ``certifi.where()`` (tests use a copy). Returns one
    human-readable line per action taken or skipped.
    """
    ca_pem = _ca_pem(paths)
    report: list[str] = []
    if system:
        report.extend(_install_system(ca_pem))
    if certifi_bundle:
        report.append(_install_certifi(paths, ca_pem, _certifi_file(certifi_path)))
    return report


def uninstall_ca(
    paths: TlsPaths,
    *,
    system: bool = True,
    certifi_bundle: bool = True,
    certifi_path: Path | None = None,
) -> list[str]:
    """Reverse :func:`install_ca`: drop the CA from certifi's bundle and from the system store."""
    ca_pem = _ca_pem(paths)
    report: list[str] = []
    if system:
        report.extend(_uninstall_system())
    if certifi_bundle:
        report.append(_uninstall_certifi(paths, ca_pem, _certifi_file(certifi_path)))
    return report


def _ca_pem(paths: TlsPaths) -> str:
    return paths.ca_cert.read_text(encoding="ascii").strip() + "\n"


def _certifi_file(certifi_path: Path | None) -> Path:
    return Path(certifi_path) if certifi_path is not None else Path(certifi.where())


def _certifi_block(paths: TlsPaths, ca_pem: str) -> str:
    """The exact text appended to certifi's bundle, in certifi's own comment style."""
    cert = x509.load_pem_x509_certificate(ca_pem.encode("ascii"))
    subject = cert.subject.rfc4514_string()
    common_names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    label = str(common_names[0].value) if common_names else "Interlink Local CA"
    return (
        f'\n# Issuer: {subject}\n# Subject: {subject}\n# Label: "{label}"\n'
        f"# Source: {paths.ca_cert}\n{ca_pem}"
    )


def _install_certifi(paths: TlsPaths, ca_pem: str, target: Path) -> str:
    try:
        text = target.read_text(encoding="utf-8")
    except OSError as exc:
        return f"certifi: skipped, cannot read {target}: {exc.strerror or exc}"
    if ca_pem.strip() in text:
        return f"certifi: local CA already present in {target}"
    if text and not text.endswith("\n"):
        text += "\n"
    try:
        _replace_text(target, text + _certifi_block(paths, ca_pem))
    except PermissionError:
        return f"certifi: skipped, no permission to write {target}"
    return f"certifi: appended local CA to {target}"


def _uninstall_certifi(paths: TlsPaths, ca_pem: str, target: Path) -> str:
    try:
        text = target.read_text(encoding="utf-8")
    except OSError as exc:
        return f"certifi: skipped, cannot read {target}: {exc.strerror or exc}"
    block = _certifi_block(paths, ca_pem)
    if block in text:
        new_text = text.replace(block, "")
    elif ca_pem.strip() in text:  # added by hand or by an older format: remove the PEM alone
        new_text = text.replace(ca_pem.strip() + "\n", "").replace(ca_pem.strip(), "")
    else:
        return f"certifi: local CA not present in {target}"
    try:
        _replace_text(target, new_text)
    except PermissionError:
        return f"certifi: skipped, no permission to write {target}"
    return f"certifi: removed local CA from {target}"


def _replace_text(target: Path, text: str) -> None:
    mode = target.stat().st_mode & 0o777
    _atomic_write(target, text.encode("utf-8"), mode)


def _install_system(ca_pem: str) -> list[str]:
    target = SYSTEM_CA_DIR / SYSTEM_CA_NAME
    if not SYSTEM_CA_DIR.is_dir():
        return [f"system: skipped, {SYSTEM_CA_DIR} does not exist (not a Debian-style trust store)"]
    try:
        if target.read_text(encoding="ascii") == ca_pem:
            return [f"system: local CA already installed as {target}"]
    except (OSError, UnicodeDecodeError):
        pass
    if not os.access(SYSTEM_CA_DIR, os.W_OK):
        return [f"system: skipped, no permission to write {SYSTEM_CA_DIR} (rerun with sudo)"]
    try:
        _atomic_write(target, ca_pem.encode("ascii"), _CERT_MODE)
    except PermissionError:
        return [f"system: skipped, no permission to write {target} (rerun with sudo)"]
    return [f"system: copied local CA to {target}", _update_ca_certificates()]


def _uninstall_system() -> list[str]:
    target = SYSTEM_CA_DIR / SYSTEM_CA_NAME
    if not target.exists():
        return [f"system: {target} not present"]
    try:
        target.unlink()
    except PermissionError:
        return [f"system: skipped, no permission to remove {target} (rerun with sudo)"]
    return [f"system: removed {target}", _update_ca_certificates()]


def _update_ca_certificates() -> str:
    command = shutil.which("update-ca-certificates")
    if command is None:
        return "system: update-ca-certificates not found; refresh the trust store by hand"
    try:
        result = subprocess.run(
            [command], capture_output=True, text=True, timeout=_UPDATE_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"system: update-ca-certificates failed: {exc}"
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        return f"system: update-ca-certificates exited {result.returncode}: {detail[-1] if detail else ''}"
    return "system: ran update-ca-certificates"


# --------------------------------------------------------------------------------------------
# SSL contexts
# --------------------------------------------------------------------------------------------


#: The oldest protocol any Interlink TLS port accepts. TLS 1.0 and 1.1 are refused in the handshake, as the
#: platform has done since 2017 (the gRPC port's BoringSSL has the same floor by default; tests prove both).
MINIMUM_TLS_VERSION = ssl.TLSVersion.TLSv1_2


def require_modern_tls(context: ssl.SSLContext) -> ssl.SSLContext:
    """Raise ``context``'s floor to TLS 1.2, whatever the Python build or OpenSSL configuration defaults to."""
    if context.minimum_version < MINIMUM_TLS_VERSION:  # MINIMUM_SUPPORTED (-2) included
        context.minimum_version = MINIMUM_TLS_VERSION
    return context


def server_ssl_context(paths: TlsPaths) -> ssl.SSLContext:
    """A TLS 1.2+ server context presenting the local server certificate."""
    context = require_modern_tls(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    context.load_cert_chain(certfile=str(paths.server_cert), keyfile=str(paths.server_key))
    return context


def client_ssl_context(paths: TlsPaths) -> ssl.SSLContext:
    """A verifying TLS 1.2+ client context that trusts the bundle (system roots + local CA)."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(paths.bundle))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


__all__ = [
    "DEFAULT_HOSTS",
    "MINIMUM_TLS_VERSION",
    "TlsPaths",
    "ca_export_lines",
    "client_ssl_context",
    "ensure_tls",
    "install_ca",
    "require_modern_tls",
    "server_ssl_context",
    "uninstall_ca",
]
