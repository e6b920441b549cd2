"""``interlink doctor``: check the machine, ports, storage, TLS and the services scale-out uses."""

from __future__ import annotations

import os
import socket
import ssl
import sys
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime

from rich.console import Console
from rich.table import Table

from interlink.settings import Settings

OK, WARN, FAIL = "ok", "warn", "fail"
Check = tuple[str, str, str]  # (name, status, detail)


def _tcp(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def check_python() -> Check:
    version = ".".join(map(str, sys.version_info[:3]))
    return ("python", OK if sys.version_info >= (3, 11) else FAIL, f"{version} at {sys.executable}")


def check_data_dir(settings: Settings) -> Check:
    path = settings.data_dir.resolve()
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".doctor-probe"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        return ("data dir", FAIL, f"{path}: {exc}")
    return ("data dir", OK, f"{path} is writable")


def check_store(settings: Settings) -> Check:
    from interlink.errors import InterlinkError
    from interlink.store.database import Store

    if not settings.store and not (settings.data_dir / "org.db").exists():
        return ("store", WARN, f"no org yet in {settings.data_dir.resolve()} (interlink up creates one)")
    try:
        store = Store(settings.store_url)
        store.open()
        try:
            objects = len(store.schema)
        finally:
            store.close()
    except InterlinkError as exc:
        return ("store", FAIL, exc.message)
    shown = settings.store_url.split("@")[-1] if "@" in settings.store_url else settings.store_url
    return ("store", OK, f"{store.backend}: {shown} ({objects} objects deployed)")


def check_bulk_jobs(settings: Settings) -> Check:
    from interlink.jobs.bulk import job_queue
    from interlink.store.database import Store

    if not settings.store and not (settings.data_dir / "org.db").exists():
        return ("bulk jobs", OK, "no org yet")
    store = Store(settings.store_url)
    store.open()
    try:
        stats = job_queue(store)
    finally:
        store.close()
    detail = f"{stats.running} running, {stats.queued} waiting for a worker"
    if stats.queued and stats.oldest_wait > 300:
        return ("bulk jobs", WARN, f"{detail}; the oldest has waited {stats.oldest_wait / 60:.0f} min: is a server "
                                   "with bulk_workers > 0 running?")
    return ("bulk jobs", OK, detail)


def check_tls(settings: Settings) -> Check:
    from cryptography import x509

    server = settings.data_dir / "tls" / "server.pem"
    if not server.exists():
        return ("tls", WARN, "no certificates yet (created on first `interlink up`)")
    cert = x509.load_pem_x509_certificate(server.read_bytes())
    expires = cert.not_valid_after_utc
    days = (expires - datetime.now(UTC)).days
    status = OK if days > 30 else WARN if days > 0 else FAIL
    return ("tls", status, f"server certificate valid for {days} more days; bundle {server.parent / 'bundle.pem'}")


def check_port(settings: Settings) -> Check:
    from interlink.app.server import read_server_file

    info = read_server_file(settings.data_dir)
    if info is not None:
        url = str(info.get("url"))
        bundle = str(info.get("ca_bundle"))
        try:
            context = ssl.create_default_context(cafile=bundle)
            with urllib.request.urlopen(f"{url}/health", timeout=3, context=context) as response:
                return ("server", OK, f"running at {url} (pid {info.get('pid')}), /health {response.status}")
        except (OSError, ValueError) as exc:
            return ("server", WARN, f"{url} recorded but not answering ({exc}); stale server.json?")
    host = settings.host if settings.host not in ("0.0.0.0", "::") else "127.0.0.1"
    if _tcp(host, settings.port, 0.5):
        return ("port", FAIL, f"{host}:{settings.port} is taken by another program (use --port)")
    return ("port", OK, f"{host}:{settings.port} is free")


def check_bus(settings: Settings) -> Check:
    """The configured event bus: the embedded log's file, or the NATS server named by ``bus``."""
    from urllib.parse import urlparse

    url = settings.bus_url
    if url.startswith("sqlite:"):
        path = url.removeprefix("sqlite:///")
        return ("event bus", OK, f"embedded SQLite log {path}")
    parsed = urlparse(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 4222
    if _tcp(host, port):
        return ("event bus", OK, f"NATS reachable at {host}:{port}")
    return ("event bus", FAIL, f"NATS not reachable at {host}:{port} (bus = {url})")


def check_grpc_port(settings: Settings) -> Check:
    from interlink.app.server import read_server_file

    info = read_server_file(settings.data_dir)
    if info is not None and info.get("grpc_port"):
        return ("pubsub port", OK, f"Pub/Sub API of the running server on port {info['grpc_port']}")
    if settings.grpc_port <= 0:
        return ("pubsub port", OK, "picked at start" if settings.grpc_port == 0 else "Pub/Sub API turned off")
    host = settings.host if settings.host not in ("0.0.0.0", "::") else "127.0.0.1"
    if _tcp(host, settings.grpc_port, 0.5):
        return ("pubsub port", FAIL, f"{host}:{settings.grpc_port} is taken by another program (use --grpc-port)")
    return ("pubsub port", OK, f"{host}:{settings.grpc_port} is free")


def check_service(name: str, host: str, port: int, hint: str) -> Check:
    if _tcp(host, port):
        return (name, OK, f"reachable at {host}:{port}")
    return (name, WARN, f"not reachable at {host}:{port} ({hint})")


def run_doctor(settings: Settings, console: Console | None = None) -> bool:
    """Print a table of checks; True when nothing failed."""
    console = console or Console(stderr=True)
    checks: list[Callable[[], Check]] = [
        check_python,
        lambda: check_data_dir(settings),
        lambda: check_store(settings),
        lambda: check_tls(settings),
        lambda: check_port(settings),
        lambda: check_grpc_port(settings),
        lambda: check_bus(settings),
        lambda: check_bulk_jobs(settings),
        lambda: check_service("postgresql", os.environ.get("PGHOST", "127.0.0.1"), 5432,
                              "needed only for --store postgresql://"),
        lambda: check_service("nats", "127.0.0.1", 4222, "needed only for --bus nats://"),
    ]
    table = Table("check", "status", "detail", title="interlink doctor")
    failed = False
    colours = {OK: "green", WARN: "yellow", FAIL: "red"}
    for check in checks:
        try:
            name, status, detail = check()
        except Exception as exc:
            name, status, detail = getattr(check, "__name__", "check"), FAIL, f"{type(exc).__name__}: {exc}"
        failed = failed or status == FAIL
        table.add_row(name, f"[{colours[status]}]{status}[/]", detail)
    console.print(table)
    return not failed


__all__ = ["run_doctor"]


