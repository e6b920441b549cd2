"""Run an org's HTTPS API with uvicorn (plus an optional plain-HTTP debug port).

The process writes ``<data_dir>/run/server.json`` (url, ports, pid, CA bundle) once it is serving, so
scripts and tests can find an org started on an ephemeral port, and removes it on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from interlink.api.app import build_app
from interlink.app.http_protocol import protocol_with
from interlink.app.org import Org
from interlink.security.tls import TlsPaths, ensure_tls, require_modern_tls

log = logging.getLogger(__name__)

# How long an idle keep-alive connection stays open. uvicorn's default (5 s) equals the poll interval of common Bulk
# clients (simple-salesforce waits 5 s between job checks), so a pooled connection was often reused just as the
# server closed it ("Remote end closed connection without response"). Load balancers commonly keep 60 s.
KEEP_ALIVE_SECONDS = 65


@dataclass(frozen=True)
class ServerInfo:
    url: str
    port: int
    insecure_url: str | None
    tls: TlsPaths
    pid: int
    grpc_port: int | None = None


class TlsConfig(uvicorn.Config):
    """uvicorn's configuration, with the HTTPS port refusing anything older than TLS 1.2.

    uvicorn builds its ``SSLContext`` in :meth:`load` from the ``ssl_*`` arguments and offers no option for the
    protocol floor (``ssl_version`` only picks the method); raise it on the context it built.
    """

    def load(self) -> None:
        super().load()
        if self.ssl is not None:
            require_modern_tls(self.ssl)


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to :func:`serve` (we may run two)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # uvicorn closes idle keep-alive connections; over TLS, close() then waits for the client's
        # close_notify (asyncio's 30 s ssl_shutdown_timeout), which a pooled client connection never sends.
        # Abort the connections that are already closing instead of stalling the exit: those the keep-alive
        # timeout closed before (now, since a second close() detaches asyncio's TLS transport from its socket, and
        # abort() then does nothing), and those uvicorn closes below.
        def reap() -> None:
            for connection in list(self.server_state.connections):
                transport = getattr(connection, "transport", None)
                if transport is not None and transport.is_closing():
                    transport.abort()

        async def reap_later() -> None:
            await asyncio.sleep(0.5)
            reap()

        reap()
        reaper = asyncio.create_task(reap_later())
        try:
            await super().shutdown(sockets)
        finally:
            reaper.cancel()


def _display_host(host: str) -> str:
    if host in ("0.0.0.0", "::", ""):
        return "localhost"
    return f"[{host}]" if ":" in host else host


def _bound_port(server: uvicorn.Server) -> int:
    for listener in server.servers:
        for sock in listener.sockets:
            return int(sock.getsockname()[1])
    raise RuntimeError("server has no listening socket")


def server_file(data_dir: Path) -> Path:
    return data_dir / "run" / "server.json"


def write_server_file(data_dir: Path, info: ServerInfo, org_id: str, **extra: object) -> None:
    """Say where the org serves (read by scripts, tests and ``interlink`` commands)."""
    path = server_file(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"url": info.url, "port": info.port, "insecure_url": info.insecure_url,
                                     "pid": info.pid, "ca_bundle": str(info.tls.bundle), "org_id": org_id,
                                     "grpc_port": info.grpc_port, **extra}))
    temporary.replace(path)


def read_server_file(data_dir: Path) -> dict[str, object] | None:
    path = server_file(data_dir)
    try:
        return json.loads(path.read_text())  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return None


async def serve(org: Org, *, on_ready: Callable[[ServerInfo], None] | None = None,
                on_stop: Callable[[], None] | None = None, sockets: list[socket.socket] | None = None,
                grpc_port: int | None = None, shared_ports: bool = False) -> None:
    """Serve ``org`` until SIGINT/SIGTERM; calls ``on_ready`` once every port accepts connections, and ``on_stop``
    (which must not block) when a signal asks it to stop, before it closes its connections.

    ``shared_ports``: this is one of several API processes (:mod:`interlink.app.supervisor`): it serves on the
    inherited listening ``sockets`` (HTTPS, then the optional plain-HTTP one), binds the Pub/Sub port ``grpc_port``
    with SO_REUSEPORT, stops on SIGTERM only and leaves ``server.json`` to the supervisor."""
    settings = org.settings
    tls = ensure_tls(settings.data_dir, hosts=_tls_hosts(settings.host))
    app = build_app(org)
    log_level = settings.log_level.lower()
    https = _Server(TlsConfig(app, host=settings.host, port=settings.port, ssl_certfile=str(tls.server_cert),
                              ssl_keyfile=str(tls.server_key), log_level=log_level, access_log=False,
                              lifespan="on", server_header=False, proxy_headers=False,
                              timeout_keep_alive=KEEP_ALIVE_SECONDS,
                              http=protocol_with(settings.request_header_timeout)))
    servers: list[uvicorn.Server] = [https]
    if settings.insecure_http_port:
        servers.append(_Server(uvicorn.Config(app, host=settings.host, port=settings.insecure_http_port,
                                              log_level=log_level, access_log=False, lifespan="off",
                                              server_header=False, timeout_keep_alive=KEEP_ALIVE_SECONDS,
                                              http=protocol_with(settings.request_header_timeout))))

    loop = asyncio.get_running_loop()

    def stop() -> None:
        app.state.draining.set()
        for server in servers:
            server.should_exit = True

    def stop_signalled() -> None:
        if on_stop is not None:
            on_stop()
        stop()

    for signum in (signal.SIGTERM,) if shared_ports else (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop_signalled)

    grpc_server = None
    if not shared_ports:
        grpc_port = settings.grpc_port if settings.grpc_port >= 0 else None
    if grpc_port is not None:
        from interlink.pubsub.service import start_server

        grpc_server, grpc_port = await start_server(
            org, settings.host, grpc_port, server_cert=tls.server_cert.read_bytes(),
            server_key=tls.server_key.read_bytes(), keepalive_seconds=settings.pubsub_keepalive_seconds,
            reuse_port=shared_ports)
    tasks = [asyncio.create_task(server.serve(sockets=[sock] if sockets else None))
             for server, sock in zip(servers, sockets or [None] * len(servers), strict=False)]
    info_path = server_file(settings.data_dir)
    try:
        while not all(server.started for server in servers):
            if any(task.done() for task in tasks):
                break
            await asyncio.sleep(0.01)
        if all(server.started for server in servers):
            host = _display_host(settings.host)
            port = _bound_port(https)
            insecure = f"http://{host}:{_bound_port(servers[1])}" if len(servers) > 1 else None
            info = ServerInfo(f"https://{host}:{port}", port, insecure, tls, os.getpid(), grpc_port)
            if not shared_ports:
                write_server_file(settings.data_dir, info, org.org_id)
            if on_ready is not None:
                on_ready(info)
        await asyncio.gather(*tasks)
    finally:
        stop()
        if grpc_server is not None:
            await grpc_server.stop(grace=1.0)
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        if not shared_ports:
            with contextlib.suppress(OSError):
                info_path.unlink()


def _tls_hosts(host: str) -> list[str]:
    hosts = ["localhost", "127.0.0.1", "::1"]
    if host not in ("0.0.0.0", "::", "") and host not in hosts:
        hosts.append(host)
    elif host in ("0.0.0.0", "::"):
        hosts.append(socket.gethostname())
    return hosts
