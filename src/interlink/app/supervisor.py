"""``interlink up --workers N``: N API processes behind one HTTPS port and one Pub/Sub port, kept running.

The supervisor (the ``interlink up`` process itself) opens and deploys the org once, binds the HTTPS listening
socket (and the optional plain-HTTP one) and starts N API processes that inherit it: the kernel hands each new
connection to whichever process accepts first, so a process that dies leaves the queued connections to the others.
The Pub/Sub port cannot be inherited (gRPC binds its own sockets), so the supervisor reserves it with
``SO_REUSEPORT`` and every API process binds it the same way; the kernel spreads new streams over them.

An API process that exits unexpectedly (``kill -9``, a crash) is started again, at once the first time and after a
growing pause (up to 30 s) when it keeps dying within seconds. SIGINT/SIGTERM stop every process: each drains
(long polls and streams end, requests in flight finish) and gives its claimed background jobs back.

All state is in the store and the bus, so the processes share nothing else: on PostgreSQL and NATS the same
processes can run on several machines (``--workers`` per machine behind a load balancer).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from interlink.errors import ConfigurationError
from interlink.settings import Settings

if TYPE_CHECKING:
    from interlink.app.org import Org
    from interlink.app.server import ServerInfo

log = logging.getLogger(__name__)

CHILD_ENV = "INTERLINK_API_PROCESS"
_MAX_BACKOFF = 30.0
_QUICK_DEATH = 10.0  # a process that dies sooner than this after its start counts as failing to start


@dataclass
class Listeners:
    """What the supervisor binds for its API processes."""

    https: socket.socket
    http: socket.socket | None = None
    grpc_port: int | None = None
    grpc_reservation: socket.socket | None = None

    @property
    def port(self) -> int:
        return int(self.https.getsockname()[1])

    def close(self) -> None:
        for sock in (self.https, self.http, self.grpc_reservation):
            if sock is not None:
                sock.close()


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _listen(host: str, port: int, what: str) -> socket.socket:
    sock = socket.socket(_family(host), socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise ConfigurationError(f"cannot listen for {what} on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def _reserve_grpc_port(host: str, port: int) -> tuple[int, socket.socket]:
    """Reserve the Pub/Sub port for processes binding it with SO_REUSEPORT; refuse a port someone else holds
    (checked with a plain bind first: a second org with SO_REUSEPORT must not share it silently)."""
    if port:
        probe = socket.socket(_family(host), socket.SOCK_STREAM)
        try:
            probe.bind((host, port))
        except OSError:
            raise ConfigurationError(
                f"cannot listen for the Pub/Sub API on {host}:{port}: the port is taken (choose another with "
                "--grpc-port, 0 for any free port, -1 for none)") from None
        finally:
            probe.close()
    reservation = socket.socket(_family(host), socket.SOCK_STREAM)
    reservation.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        reservation.bind((host, port))
    except OSError as exc:
        reservation.close()
        raise ConfigurationError(f"cannot reserve the Pub/Sub port {host}:{port}: {exc}") from None
    return int(reservation.getsockname()[1]), reservation


def bind_listeners(settings: Settings) -> Listeners:
    https = _listen(settings.host, settings.port, "HTTPS")
    listeners = Listeners(https)
    try:
        if settings.insecure_http_port:
            listeners.http = _listen(settings.host, settings.insecure_http_port, "plain HTTP")
        if settings.grpc_port >= 0:
            listeners.grpc_port, listeners.grpc_reservation = _reserve_grpc_port(settings.host, settings.grpc_port)
    except BaseException:
        listeners.close()
        raise
    return listeners


def _settings_flags(settings: Settings) -> dict[str, Any]:
    return {name: str(value) if isinstance(value, Path) else value for name, value in asdict(settings).items()}


@dataclass
class _Child:
    index: int
    process: subprocess.Popen[bytes]
    started: float
    ready_fd: int | None
    failures: int = 0
    restart_at: float | None = None
    ready: bool = False


@dataclass
class Supervisor:
    """Starts ``count`` API processes on ``listeners`` and keeps them running until :meth:`stop`."""

    settings: Settings
    listeners: Listeners
    count: int
    on_change: Callable[[list[int]], None] = lambda _pids: None
    children: list[_Child] = field(default_factory=list)
    stopping: bool = False

    def _spawn(self, index: int, *, report_ready: bool, failures: int = 0) -> _Child:
        fds = [self.listeners.https.fileno()]
        if self.listeners.http is not None:
            fds.append(self.listeners.http.fileno())
        read_fd = write_fd = None
        if report_ready:
            read_fd, write_fd = os.pipe()
            fds.append(write_fd)
        spec = {"settings": _settings_flags(self.settings), "index": index,
                "https_fd": self.listeners.https.fileno(),
                "http_fd": self.listeners.http.fileno() if self.listeners.http is not None else None,
                "grpc_port": self.listeners.grpc_port, "ready_fd": write_fd}
        env = {**os.environ, CHILD_ENV: json.dumps(spec)}
        try:
            process = subprocess.Popen([sys.executable, "-m", "interlink.app.supervisor"], env=env,
                                       pass_fds=fds, start_new_session=False)
        finally:
            if write_fd is not None:
                os.close(write_fd)
        return _Child(index, process, time.monotonic(), read_fd, failures)

    def start(self, timeout: float = 120.0) -> list[int]:
        """Start every API process and wait until each serves; returns their pids."""
        self.children = [self._spawn(index, report_ready=True) for index in range(self.count)]
        deadline = time.monotonic() + timeout
        try:
            while not all(child.ready for child in self.children):
                for child in self.children:
                    code = child.process.poll()
                    if code is not None and not child.ready:
                        raise ConfigurationError(f"API process {child.index + 1} of {self.count} exited with "
                                                 f"{_describe_exit(code)} while starting (its log is above)")
                waiting = {child.ready_fd: child for child in self.children if not child.ready and child.ready_fd}
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ConfigurationError(f"the API processes did not start within {timeout:.0f} s")
                readable, _, _ = select.select(list(waiting), [], [], min(remaining, 0.2))
                for fd in readable:
                    child = waiting[fd]
                    if os.read(fd, 64):
                        child.ready = True
                    os.close(fd)
                    child.ready_fd = None
        except BaseException:
            self.stop()
            raise
        return self.pids()

    def pids(self) -> list[int]:
        return [child.process.pid for child in self.children]

    def watch(self) -> None:
        """Restart API processes that died; call regularly until :attr:`stopping`."""
        now = time.monotonic()
        changed = False
        for position, child in enumerate(self.children):
            if self.stopping:
                return
            code = child.process.poll()
            if code is None:
                if child.failures and now - child.started > _QUICK_DEATH:
                    child.failures = 0
                continue
            if child.restart_at is None:
                quick = now - child.started < _QUICK_DEATH
                failures = child.failures + 1 if quick else 0
                delay = min(_MAX_BACKOFF, 2.0 ** (failures - 1)) if failures else 0.0
                child.restart_at = now + delay
                child.failures = failures
                log.warning("API process %d (pid %d) exited with %s; %s", child.index + 1, child.process.pid,
                            _describe_exit(code),
                            f"starting it again in {delay:.0f} s" if delay else "starting it again")
                _process_exited(child.process.pid)
            if child.restart_at <= now:
                if child.ready_fd is not None:
                    os.close(child.ready_fd)
                self.children[position] = self._spawn(child.index, report_ready=False, failures=child.failures)
                changed = True
        if changed:
            self.on_change(self.pids())

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM every API process, wait for them to drain (SIGKILL after ``timeout``)."""
        self.stopping = True
        for child in self.children:
            if child.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for child in self.children:
            try:
                child.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("API process %d did not stop in %.0f s: killing it", child.index + 1, timeout)
                child.process.kill()
                child.process.wait()
            if child.ready_fd is not None:
                with contextlib.suppress(OSError):
                    os.close(child.ready_fd)
                child.ready_fd = None
            _process_exited(child.process.pid)


def _process_exited(pid: int) -> None:
    from interlink.app import metrics

    metrics.child_exited(pid)


def _describe_exit(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"signal {signal.Signals(-code).name}"
    return f"exit code {code}"


@contextlib.contextmanager
def supervised(settings: Settings, listeners: Listeners, on_change: Callable[[list[int]], None]) -> Iterator[
        Supervisor]:
    """Start the API processes; stop them on leaving."""
    from interlink.app import metrics

    metrics.setup_multiprocess(settings.data_dir / "run")
    supervisor = Supervisor(settings, listeners, settings.workers, on_change)
    supervisor.start()
    try:
        yield supervisor
    finally:
        supervisor.stop()


def run_supervised(org: Org, *, on_ready: Callable[[ServerInfo], None] | None = None,
                   on_stop: Callable[[], None] | None = None) -> None:
    """``interlink up --workers N`` once ``org`` is deployed: serve through N API processes until SIGINT/SIGTERM."""
    import threading

    from interlink.app.server import ServerInfo, _display_host, _tls_hosts, server_file, write_server_file
    from interlink.security.tls import ensure_tls

    settings = org.settings
    tls = ensure_tls(settings.data_dir, hosts=_tls_hosts(settings.host))
    listeners = bind_listeners(settings)
    stop = threading.Event()

    def stop_signalled(_signum: int, _frame: object) -> None:
        if not stop.is_set() and on_stop is not None:
            on_stop()
        stop.set()

    previous = {signum: signal.signal(signum, stop_signalled) for signum in (signal.SIGINT, signal.SIGTERM)}
    host = _display_host(settings.host)
    info = ServerInfo(f"https://{host}:{listeners.port}", listeners.port,
                      f"http://{host}:{listeners.http.getsockname()[1]}" if listeners.http is not None else None,
                      tls, os.getpid(), listeners.grpc_port)

    membership = org.processes.membership("supervisor", {
        "port": listeners.port, "grpc_port": listeners.grpc_port, "listen": settings.host, "jobs": False})

    def publish(pids: list[int]) -> None:
        write_server_file(settings.data_dir, info, org.org_id, workers=pids)
        membership.beat({"workers": pids}, force=True)

    try:
        with membership, supervised(settings, listeners, publish) as supervisor:
            publish(supervisor.pids())
            if on_ready is not None:
                on_ready(info)
            while not stop.wait(0.25):
                supervisor.watch()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        listeners.close()
        with contextlib.suppress(OSError):
            server_file(settings.data_dir).unlink()


def _exit_with_supervisor(poll_seconds: float = 1.0) -> None:
    """Stop this API process (SIGTERM to itself: a clean drain) when its supervisor is gone, e.g. killed with -9:
    an orphaned process would keep serving the port with nobody to stop it."""
    import threading

    supervisor = os.getppid()

    def watch() -> None:
        while os.getppid() == supervisor:
            time.sleep(poll_seconds)
        log.warning("the supervisor (pid %d) is gone: stopping", supervisor)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="interlink-supervisor-watch", daemon=True).start()


def child_main() -> None:
    """An API process started by :class:`Supervisor` (``python -m interlink.app.supervisor``)."""
    import asyncio

    from interlink.app.org import Org
    from interlink.app.server import serve

    spec = json.loads(os.environ.pop(CHILD_ENV))
    settings = Settings.load(spec["settings"], env={})
    logging.basicConfig(level=settings.log_level.upper(),
                        format=f"%(asctime)s %(levelname)s [api {spec['index'] + 1}] %(name)s: %(message)s")
    # The supervisor stops this process with SIGTERM; a Ctrl-C in the terminal reaches the whole process group, and
    # the supervisor must see it first (or it would take the exits for crashes), so SIGINT is left to it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    ready_fd: int | None = spec["ready_fd"]
    sockets = [socket.socket(fileno=spec["https_fd"])]
    if spec["http_fd"] is not None:
        sockets.append(socket.socket(fileno=spec["http_fd"]))
    org = Org.open(settings, deploy=False)
    _exit_with_supervisor()

    def ready(_info: ServerInfo) -> None:
        if ready_fd is not None:
            os.write(ready_fd, b"ready\n")
            os.close(ready_fd)

    try:
        asyncio.run(serve(org, on_ready=ready, sockets=sockets, grpc_port=spec["grpc_port"], shared_ports=True))
    finally:
        org.close()


if __name__ == "__main__":
    child_main()
